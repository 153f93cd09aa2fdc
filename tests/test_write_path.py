"""The one write path (docs/ARCHITECTURE.md, *Store and Temporal*): rows and their workflow's
start commit together, the start happens right after or from the worker's reconciler, a
retried create makes nothing twice, and a projection never moves a quote backwards."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import signal
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.approvals import _project
from dealdesk.settings import Settings
from store import starts
from store.db import write_lock
from store.models import ApprovalRequest, Quote, User
from tests.chain_fixtures import TWO_STEP_POLICY, Deal
from tests.support import eventually, load_policy, make_user, open_tasks, serve
from tests.web_support import seed_people, token_client
from web.services.invoices import mark_won
from web.services.quotes import actor_of, facts_of, submit_quote
from workflows.messages import ChainResult, ChainSnapshot


def _rep_and_manager(sessions: sessionmaker[Session]) -> tuple[User, User]:
    with sessions.begin() as s:
        rep, mgr = make_user(s, "Rita Rep", "rep"), make_user(s, "Mo Manager", "sales_manager")
        load_policy(s, TWO_STEP_POLICY)
        s.expunge_all()
    return rep, mgr


async def test_a_submission_made_while_temporal_is_unreachable_starts_from_the_reconciler(
        sessions: sessionmaker[Session], client: Client, settings: Settings,
        worker: str) -> None:
    """The request commits the status change and the start together, can't reach Temporal
    (no client), and answers anyway; the worker's reconciler starts the chain once, and a
    second start of the same row changes nothing."""
    rep, _ = _rep_and_manager(sessions)
    deal = Deal(sessions, client, settings, rep, net_amount=8_500_000)
    with sessions() as s:
        quote = s.get(Quote, deal.quote_id)
        assert quote is not None
        deal.wid = await submit_quote(s, None, quote, s.merge(rep),
                                      task_queue=settings.task_queue,
                                      prefix=settings.workflow_prefix)
    with sessions() as s:
        assert s.get(Quote, deal.quote_id).status == "pending_approval"  # type: ignore[union-attr]
        assert starts.is_pending(s, deal.wid)
    await deal.tasks("manager")  # the reconciler started it
    with sessions() as s:
        assert not starts.is_pending(s, deal.wid)
        write_lock(s)  # the worker writes too: queue for the lock, don't fail on it
        row = s.scalar(select(starts.WorkflowStart).where(
            starts.WorkflowStart.workflow_id == deal.wid))
        assert row is not None
        row.started_at = None  # as if the process died before recording the start
        s.commit()
        assert await starts.start_now(client, s, deal.wid)  # "already started": fine
    assert len(open_tasks(sessions, deal.quote_id)) == 1
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{deal.wid}'")]
    assert len(runs) == 1


async def test_starting_the_same_rows_from_many_places_at_once_runs_one_workflow(
        sessions: sessionmaker[Session], client: Client, settings: Settings,
        worker: str) -> None:
    rep, _ = _rep_and_manager(sessions)
    deal = Deal(sessions, client, settings, rep, net_amount=8_500_000)
    with sessions() as s:
        quote = s.get(Quote, deal.quote_id)
        assert quote is not None
        deal.wid = await submit_quote(s, None, quote, s.merge(rep),
                                      task_queue=settings.task_queue,
                                      prefix=settings.workflow_prefix)

    async def start_one() -> bool:
        with sessions() as s:
            return await starts.start_now(client, s, deal.wid)

    results = await asyncio.gather(*(start_one() for _ in range(8)),
                                   starts.start_pending(client, sessions,
                                                        older_than=dt.timedelta(0)))
    assert all(results[:8]) and results[8] == 0
    await deal.tasks("manager")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ApprovalRequest)) == 1


async def test_a_late_projection_never_moves_a_won_deal_back(
        sessions: sessionmaker[Session], client: Client, settings: Settings,
        worker: str) -> None:
    """The chain's final snapshot can reach the store after the deal was won (a retried
    projection, the last flush): the quote stays won."""
    rep, mgr = _rep_and_manager(sessions)
    deal = Deal(sessions, client, settings, rep, net_amount=8_500_000)
    await deal.submit()
    [task] = await deal.tasks("manager")
    await deal.act(task, mgr)
    await deal.status("approved")
    await eventually(lambda: _status(sessions, deal.quote_id) == "approved")
    with sessions() as s:
        quote = s.get(Quote, deal.quote_id)
        assert quote is not None
        await mark_won(s, client, quote, s.merge(rep), task_queue=settings.task_queue,
                       org_name=settings.org_name, prefix=settings.workflow_prefix)
    handle = client.get_workflow_handle(deal.wid, result_type=ChainResult)
    assert (await handle.result()).status == "approved"  # its last flush is in
    with sessions() as s:
        write_lock(s)
        req = s.scalar(select(ApprovalRequest).where(ApprovalRequest.workflow_id == deal.wid))
        assert req is not None
        quote = s.get(Quote, deal.quote_id)
        assert quote is not None
        facts = dataclasses.replace(facts_of(s, quote), version=quote.version)
        late = ChainSnapshot(workflow_id=deal.wid, facts=facts, policy_name="two-step",
                             policy_version=1, submitted_by=actor_of(rep), status="approved",
                             revision=req.revision + 1, steps=[], tasks=[], events=[])
        _project(s, late)
        s.commit()
    assert _status(sessions, deal.quote_id) == "won"


async def test_a_retried_create_with_the_same_idempotency_key_makes_one_quote(
        sessions: sessionmaker[Session], live_url: str) -> None:
    """Ten concurrent posts with one key (a client retrying after timeouts) make one quote and
    all answer with it; the key with a different body is a 422 naming the header."""
    people = seed_people(sessions)
    rep = await token_client(live_url, people.rep)
    body = {"account_id": people.account_id, "title": "Retried", "currency": "USD",
            "list_amount": 1000, "net_amount": 900, "term_months": 12}
    headers = {"Idempotency-Key": "retry-me-1"}
    answers = await asyncio.gather(*(rep.post("/api/v1/quotes", json=body, headers=headers)
                                     for _ in range(10)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    other = await rep.post("/api/v1/quotes", json={**body, "title": "Other"}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.text
    plain = await rep.post("/api/v1/quotes", json=body)  # no key: a new quote each time
    assert plain.status_code == 201
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Quote)) == 2
    await rep.aclose()


async def test_health_reports_a_queue_whose_worker_died(
        settings: Settings, sessions: sessionmaker[Session], worker_process: Any) -> None:
    """A SIGKILLed worker stays in Temporal's poller list for a minute; /healthz says the
    queue has no live worker within seconds (its heartbeat went stale)."""
    proc = worker_process()
    async with serve(settings) as url, httpx.AsyncClient(base_url=url) as http:
        ok = await eventually(lambda: _health(http), timeout=30)
        assert ok["task_queues"][settings.task_queue]["live_workers"] == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        down = await eventually(lambda: _health(http, expect=503), timeout=30)
        queue = down["task_queues"][settings.task_queue]
        assert not queue["ok"] and queue["live_workers"] == 0
        assert "no live worker" in queue["error"]


async def _health(http: httpx.AsyncClient, expect: int = 200) -> dict[str, Any] | None:
    r = await http.get("/healthz")
    return r.json() if r.status_code == expect else None  # type: ignore[no-any-return]


def _status(sessions: sessionmaker[Session], quote_id: int) -> str:
    with sessions() as s:
        return s.scalar(select(Quote.status).where(Quote.id == quote_id)) or ""
