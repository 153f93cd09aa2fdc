"""The demo's renewals: two subscriptions made the real way (a quote submitted, approved at
once since no rule needs anyone, and marked won, which subscribes it), their terms then moved
in the store so that they renew inside 90 days: Acme's in about 45 days, Umbrella Health's in
about 70 and at risk (its account dropped to critical in ``health.py``). Each RenewalWorkflow
is then told of its moved term (a ``change_term`` Update to the same last day, which re-reads
the plan), so its reminders and renewal quote follow the new dates. Seeding again adds
nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store import starts
from store.db import write_lock
from store.models import Account, User
from store.subscriptions import Subscription, SubscriptionTerm, renewal_workflow_id
from web.services.invoices import mark_won
from web.services.quotes import QuoteFields, create_quote, submit_quote
from workflows.renewal_messages import ChangeTerm, RenewalState

# title, account, net (USD), renews in (days), at risk
RENEWALS = [
    ("Acme support subscription", "Acme Corporation", 60_000, 45, False),
    ("Umbrella analytics subscription", "Umbrella Health", 48_000, 70, True),
]


def _move(sessions: sessionmaker[Session], quote_id: int, days: int,
          at_risk: bool) -> tuple[int, dt.date]:
    """The subscription's current (first) term moved so that it renews ``days`` from today;
    its id and the term's new last day."""
    with sessions() as s:
        write_lock(s)
        sub = s.scalar(select(Subscription).where(Subscription.quote_id == quote_id))
        if sub is None:
            raise RuntimeError(f"quote {quote_id} was won but left no subscription")
        end = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days - 1)
        sub.term_start, sub.term_end = end - dt.timedelta(days=364), end
        for term in s.scalars(select(SubscriptionTerm).where(
                SubscriptionTerm.subscription_id == sub.id, SubscriptionTerm.number == 1)):
            term.start, term.end = sub.term_start, sub.term_end
        if at_risk:
            sub.at_risk, sub.risk_reason = True, "account health critical"
        s.commit()
        return sub.id, end


async def seed_renewals(sessions: sessionmaker[Session], client: Client,
                        settings: Settings) -> None:
    from dealdesk.demo import _approved  # the demo's own wait for an approval

    for title, account, net, days, at_risk in RENEWALS:
        with sessions() as s:
            if s.scalar(select(Subscription.id).where(Subscription.name == title)):
                continue
            rep = s.scalars(select(User).where(User.email == "rep@demo.test")).one()
            acc = s.scalars(select(Account).where(Account.name == account)).one()
            write_lock(s)
            quote = create_quote(s, rep, QuoteFields(
                account_id=acc.id, title=title, currency="USD", list_amount=net * 100,
                net_amount=net * 100, cost_amount=net * 30, term_months=12))
            s.commit()
            await submit_quote(s, client, quote, rep, task_queue=settings.task_queue,
                               prefix=settings.workflow_prefix)
            s.commit()
            await _approved(sessions, quote.id)
            await mark_won(s, client, quote, rep, task_queue=settings.task_queue,
                           org_name=settings.org_name, prefix=settings.workflow_prefix)
            quote_id, rep_id = quote.id, rep.id
            sub_id, end = _move(sessions, quote_id, days, at_risk)
            wid = renewal_workflow_id(settings.workflow_prefix, sub_id)
            await starts.start_now(client, s, wid)
            await client.get_workflow_handle(wid).execute_update(
                "change_term", ChangeTerm(rep_id, term_end=end.isoformat()),
                result_type=RenewalState)
