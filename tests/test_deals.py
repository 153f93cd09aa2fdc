"""Deals: the migration that makes every existing quote a deal (SQLite and PostgreSQL), and
the deals API on the real app: create, read, list, mark lost, who may do what, a new quote's
own deal, and parallel creates and losses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, text

from store.db import make_engine, make_session_factory
from store.deals import Deal
from store.migrate import upgrade
from store.models import Quote
from tests.pg import PostgresServer
from tests.support import make_account, make_user

QUOTE_STATUSES = {"draft": ("quote", "pipeline"), "pending_approval": ("approval", "best_case"),
                  "approved": ("proposal", "best_case"), "won": ("won", "closed"),
                  "rejected": ("quote", "pipeline"), "changes_requested": ("quote", "pipeline")}


def _quotes_become_deals(url: str) -> None:
    """Quotes written at revision 0011 (with a submitted version pointing at one) are each a
    deal of their own after the upgrade."""
    upgrade(url, "0011")
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        rep = make_user(s, "Rae Rep", "rep")
        account = make_account(s, "Old Co")
        now = dt.datetime.now(dt.UTC)
        for n, status in enumerate(QUOTE_STATUSES, start=1):
            s.execute(text(
                "INSERT INTO quotes (id, account_id, owner_id, title, currency, list_amount, "
                "net_amount, cost_amount, term_months, nonstandard_terms, product_families, "
                "version, status, created_at, updated_at, channel, header_discount_pct, "
                "channel_conflicts, billing) VALUES (:id, :a, :o, :t, 'EUR', 1000, :net, 0, 12, "
                "'[]', '[]', 1, :status, :now, :now, 'direct', '0', '[]', 'annual')"),
                {"id": n, "a": account.id, "o": rep.id, "t": f"Old {status}", "net": n * 100,
                 "status": status, "now": now})
        s.execute(text("INSERT INTO quote_versions (quote_id, version, facts, facts_hash, "
                       "submitted_by_id, submitted_at) VALUES (2, 1, '{}', 'x', :o, :now)"),
                  {"o": rep.id, "now": now})
        rep_id, account_id = rep.id, account.id
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        quotes = {q.status: q for q in s.scalars(select(Quote))}
        assert set(quotes) == set(QUOTE_STATUSES)
        for n, (status, (stage, forecast)) in enumerate(QUOTE_STATUSES.items(), start=1):
            deal = s.get(Deal, quotes[status].deal_id)
            assert deal is not None, status
            assert (deal.name, deal.amount, deal.currency, deal.stage, deal.forecast_category,
                    deal.owner_id, deal.account_id, deal.lost_reason) == (
                f"Old {status}", n * 100, "EUR", stage, forecast, rep_id, account_id, "")
        assert len({q.deal_id for q in quotes.values()}) == len(QUOTE_STATUSES)
        # A deal made after the migration gets a fresh id (PostgreSQL's sequence is intact).
        s.add(Deal(account_id=account_id, owner_id=rep_id, name="New", currency="EUR"))
        s.commit()
    engine.dispose()


def test_the_migration_makes_every_quote_a_deal(tmp_path: Path) -> None:
    _quotes_become_deals(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.mark.postgres
def test_the_migration_makes_every_quote_a_deal_on_postgres(postgres: PostgresServer) -> None:
    _quotes_become_deals(postgres.create_database("deals_migration"))
