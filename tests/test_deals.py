"""Deals: the migration that makes every existing quote a deal (SQLite and PostgreSQL), and
the deals API on the real app: create, read, list, mark lost, who may do what, a new quote's
own deal, and parallel creates and losses."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store.db import make_engine, make_session_factory
from store.deals import Deal
from store.migrate import upgrade
from store.models import AuditEvent, Quote
from tests.pg import PostgresServer
from tests.support import make_account, make_user, serve
from tests.web_support import (
    People,
    browser_session,
    quote_body,
    seed_people,
    token_client,
)

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
        # Raw SQL: the Account model has columns of later revisions (csm_id, 0013).
        account_id = s.execute(text(
            "INSERT INTO accounts (name, region, segment, created_at) VALUES "
            "('Old Co', 'NA', 'mid-market', :now) RETURNING id"),
            {"now": dt.datetime.now(dt.UTC)}).scalar_one()
        now = dt.datetime.now(dt.UTC)
        for n, status in enumerate(QUOTE_STATUSES, start=1):
            s.execute(text(
                "INSERT INTO quotes (id, account_id, owner_id, title, currency, list_amount, "
                "net_amount, cost_amount, term_months, nonstandard_terms, product_families, "
                "version, status, created_at, updated_at, channel, header_discount_pct, "
                "channel_conflicts, billing) VALUES (:id, :a, :o, :t, 'EUR', 1000, :net, 0, 12, "
                "'[]', '[]', 1, :status, :now, :now, 'direct', '0', '[]', 'annual')"),
                {"id": n, "a": account_id, "o": rep.id, "t": f"Old {status}", "net": n * 100,
                 "status": status, "now": now})
        s.execute(text("INSERT INTO quote_versions (quote_id, version, facts, facts_hash, "
                       "submitted_by_id, submitted_at) VALUES (2, 1, '{}', 'x', :o, :now)"),
                  {"o": rep.id, "now": now})
        rep_id = rep.id
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


# --- the API on the real app ------------------------------------------------------------


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


async def test_create_read_list_and_lose_with_role_boundaries(
        settings: Settings, people: People, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        other = make_user(s, "Oz Other", "rep")
        desk = make_user(s, "Dee Desk", "deal_desk")
        s.expunge_all()
    async with serve(settings) as url:
        rep, other_rep, auditor, manager, desk_client = [
            await token_client(url, u) for u in (people.rep, other, people.auditor,
                                                 people.manager, desk)]
        r = await auditor.post("/api/v1/deals", json={"account_id": people.account_id,
                                                      "name": "Nope"})
        assert r.status_code == 403 and r.json()["detail"], r.text
        r = await rep.post("/api/v1/deals", json={"account_id": 999_999, "name": "x"})
        assert r.status_code == 422 and r.json()["field"] == "account_id", r.text
        r = await rep.post("/api/v1/deals", json={
            "account_id": people.account_id, "name": "Fleet <renewal>", "amount": 4_200_000,
            "currency": "EUR", "expected_close": "2027-03-31"})
        assert r.status_code == 201, r.text
        deal = r.json()
        assert (deal["stage"], deal["forecast_category"], deal["owner_id"], deal["amount"]) == (
            "intake", "pipeline", people.rep.id, 4_200_000)
        assert [e["action"] for e in deal["timeline"]] == ["deal.created"]
        did = deal["id"]

        assert (await other_rep.get(f"/api/v1/deals/{did}")).status_code == 404
        assert (await other_rep.post(f"/api/v1/deals/{did}/lost",
                                     json={"reason": "x"})).status_code == 404
        assert (await auditor.get(f"/api/v1/deals/{did}")).status_code == 200
        assert (await rep.get("/api/v1/deals/0")).status_code == 422
        assert [d["id"] for d in (await other_rep.get("/api/v1/deals")).json()] == []
        listed = (await manager.get("/api/v1/deals", params={"q": "RENEWAL",
                                                             "stage": "intake"})).json()
        assert [d["id"] for d in listed] == [did]
        assert (await manager.get("/api/v1/deals", params={"stage": "won"})).json() == []
        assert (await manager.get("/api/v1/deals", params={"stage": "nope"})).status_code == 422

        # A manager reads but doesn't close someone's deal; a reason is required.
        r = await manager.post(f"/api/v1/deals/{did}/lost", json={"reason": "price"})
        assert r.status_code == 403, r.text
        r = await rep.post(f"/api/v1/deals/{did}/lost", json={"reason": "  "})
        assert r.status_code == 422 and r.json()["field"] == "reason", r.text
        r = await desk_client.post(f"/api/v1/deals/{did}/lost", json={"reason": "Went with X"})
        assert r.status_code == 200, r.text
        lost = r.json()
        assert (lost["stage"], lost["forecast_category"], lost["lost_reason"]) == (
            "lost", "omitted", "Went with X")
        # The auditor's read is on the deal's record too.
        assert [e["action"] for e in lost["timeline"]] == [
            "deal.created", "auditor.viewed", "deal.lost"]

        # A won deal can't be lost.
        won = (await rep.post("/api/v1/deals", json={"account_id": people.account_id,
                                                     "name": "Won"})).json()["id"]
        with sessions.begin() as s:
            s.get_one(Deal, won).stage = "won"
        r = await rep.post(f"/api/v1/deals/{won}/lost", json={"reason": "changed mind"})
        assert r.status_code == 409 and "won" in r.json()["detail"], r.text

        # The pages: the list and the deal, escaped, with the form only for who may close.
        page = await rep.get("/deals", params={"q": "fleet"})
        assert page.status_code == 200 and "Fleet &lt;renewal&gt;" in page.text
        page = await rep.get(f"/deals/{won}")
        assert page.status_code == 200 and "Mark lost" not in page.text
        web, csrf = await browser_session(url, people.rep)
        open_deal = (await rep.post("/api/v1/deals", json={
            "account_id": people.account_id, "name": "Form"})).json()["id"]
        page = await web.get(f"/deals/{open_deal}")
        assert 'name="csrf_token"' in page.text and "Mark lost" in page.text
        r = await web.post(f"/deals/{open_deal}/lost", data={"reason": ""},
                           headers={"X-CSRF-Token": csrf})
        assert r.status_code == 422 and "say why" in r.text
        r = await web.post(f"/deals/{open_deal}/lost", data={"reason": "<b>budget</b>",
                                                             "csrf_token": csrf})
        assert r.status_code == 303, r.text
        page = await web.get(f"/deals/{open_deal}")
        assert "&lt;b&gt;budget&lt;/b&gt;" in page.text and "Mark lost" not in page.text
        assert "Form" in (await web.get("/deals", params={"stage": "lost"})).text
        await web.aclose()
        for c in (rep, other_rep, auditor, manager, desk_client):
            await c.aclose()


async def test_a_new_quote_gets_a_deal_or_joins_one(
        settings: Settings, people: People, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        other = make_user(s, "Oz Other", "rep")
        elsewhere = make_account(s).id
        s.expunge_all()
    async with serve(settings) as url:
        rep, other_rep = await token_client(url, people.rep), await token_client(url, other)
        r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id))
        assert r.status_code == 201, r.text
        quote = r.json()
        deal = (await rep.get(f"/api/v1/deals/{quote['deal_id']}")).json()
        assert (deal["name"], deal["stage"], deal["amount"], deal["currency"]) == (
            "API quote", "quote", 8_000_000, "USD")
        assert [q["id"] for q in deal["quotes"]] == [quote["id"]]
        assert [e["action"] for e in deal["timeline"]] == ["deal.created", "quote.created"]

        second = await rep.post("/api/v1/quotes", json=quote_body(
            people.account_id, title="Second", deal_id=deal["id"]))
        assert second.status_code == 201 and second.json()["deal_id"] == deal["id"]
        # Someone else's deal, or one of another account, is refused by name.
        r = await other_rep.post("/api/v1/quotes", json=quote_body(
            people.account_id, deal_id=deal["id"]))
        assert r.status_code == 422 and r.json()["field"] == "deal_id", r.text
        r = await rep.post("/api/v1/quotes", json=quote_body(elsewhere, deal_id=deal["id"]))
        assert r.status_code == 422 and r.json()["field"] == "deal_id", r.text
        # An edit keeps the quote's deal.
        r = await rep.put(f"/api/v1/quotes/{quote['id']}", json=quote_body(
            people.account_id, title="Edited"))
        assert r.status_code == 200 and r.json()["deal_id"] == deal["id"], r.text
        deal = (await rep.get(f"/api/v1/deals/{deal['id']}")).json()
        assert len(deal["quotes"]) == 2
        await rep.aclose()
        await other_rep.aclose()


async def test_parallel_creates_and_losses(
        settings: Settings, people: People, sessions: sessionmaker[Session]) -> None:
    async with serve(settings) as url:
        rep = await token_client(url, people.rep)
        body = {"account_id": people.account_id, "name": "Twins"}
        answers = await asyncio.gather(*(
            rep.post("/api/v1/deals", json=body, headers={"Idempotency-Key": "twins-1"})
            for _ in range(10)))
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        did = answers[0].json()["id"]
        losses = await asyncio.gather(*(
            rep.post(f"/api/v1/deals/{did}/lost", json={"reason": f"reason {n}"})
            for n in range(10)))
        assert sorted(a.status_code for a in losses) == [200] + [409] * 9, [
            a.text for a in losses]
        await rep.aclose()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Deal).where(
            Deal.name == "Twins")) == 1
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.entity == f"deal:{did}", AuditEvent.action == "deal.lost")) == 1
