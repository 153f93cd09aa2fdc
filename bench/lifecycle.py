"""Deals per minute from quote to signed contract, next to raw workflow throughput on the same
Temporal server in the same run, with the time split by step and the Temporal Cloud actions
each deal costs, counted from the histories of every workflow it touched.

    .venv/bin/python -m bench.lifecycle [--deals 20] [--concurrency 4] [--raw-factor 25]

Starts its own Temporal dev server, a migrated temp SQLite store and ``dealdesk worker`` +
``dealdesk web`` as separate processes (as ``dealdesk up`` runs them). Seeds a rep (the quotes'
owner and our signer), an account and an auto-approving policy (its one rule adds a step only
above 50 % discount; the quotes carry 20 %, so each chain plans no step and ends approved at
once). Each deal, ``--concurrency`` at a time, all over HTTP as people would drive it:

1. ``POST /api/v1/quotes`` (makes the deal), ``POST /api/v1/quotes/{id}/submit`` (the deal's
   DealWorkflow by signal-with-start, the chain as its child), until the store says approved;
2. ``POST /api/v1/deals/{id}/contract`` with two signers (the Common Paper order form rendered
   in the sandbox, converted by the web's warm LibreOffice, the envelope created), until the
   customer's invitation (with the signing link) is in the outbox;
3. the customer opens ``/sign/{token}`` and signs (cookie session + CSRF, as a browser);
   once it is our turn (the store shows our recipient invited) the rep signs with
   ``POST /envelopes/{id}/sign`` (bearer token);
4. until the store shows the quote won (sealed, certificate made, ``record_outcome``: invoice,
   contract row, subscription, renewal and close-signal rows in the outbox).

Deals per minute = counted deals / wall time from the first quote create to the last "won".
One warm-up deal runs first (LibreOffice and the sandbox start on first use), not counted.
Waits on the store poll it every 25 ms (the bench's, not the app's).

**Baseline**, on the same server: a trivial workflow (one local activity that returns its
argument) run ``deals x raw-factor`` times by ``execute_workflow`` at the same concurrency, on
a worker in this process; half before the deals, half after, each half printed (this VM's
speed drifts). Printed as workflows per minute, with the ratio deals/min / workflows/min.

**Actions per deal**: after every counted deal has settled (its DealWorkflow closed by the
``close`` signal, its envelope and billing closed or asleep, its RenewalWorkflow started and
asleep on its first timer), the history of each workflow it touched (DealWorkflow, the quote's
ApprovalChainWorkflow, EnvelopeWorkflow, BillingWorkflow, RenewalWorkflow; visibility is
listed to show nothing was missed) is counted by the Temporal Cloud action definition
(docs.temporal.io/cloud/actions): workflow started 1; child workflow initiated 2 (intent +
attempt, counted for the child's type); signal 1 (signal-with-start 1 in all); update
accepted 1 (update-with-start: + the start); activity scheduled 1 and each retry 1; local
activities 1 per workflow task that recorded any (+ retries); timer started 1; search
attribute upsert 1 (TemporalChangeVersion alone is free); continue-as-new 1. Not in history:
queries, activity heartbeats and rejected updates; the dev server's own ``action`` counter
(Prometheus) over the deals phase is printed next to the count as a cross-check that does
see them. Actions a deal costs later (its billing's and renewal's timers firing, reminders,
the renewal years on) are not included.

Nothing here asserts a timing; the issue states no numeric target, so no PASS/MISS lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench._common import (
    bench_settings,
    deployed,
    finish,
    machine_note,
    summary,
    temp_root,
    temporal_server,
)
from dealdesk.runtime import connect
from store.db import make_engine, make_session_factory
from store.deals import deal_workflow_id
from store.migrate import upgrade
from store.models import Envelope, EnvelopeRecipient, OutboxMessage, Quote
from store.subscriptions import Subscription, renewal_workflow_id
from tests.support import load_policy, make_account, make_user
from tests.web_support import quote_body
from web.services.quotes import workflow_id as chain_workflow_id
from workflows.billing import billing_workflow_id

POLICY = """
name: bench-auto
steps:
  - key: manager
    name: Sales manager
    approvers: [{role: sales_manager}]
    mode: any
rules:
  - id: deep-discount
    when: [{fact: discount_pct, op: gt, value: 50}]
    add: [manager]
"""
RAW_QUEUE = "bench-raw"
POLL_S = 0.025
STEP_TIMEOUT_S = 180.0
LINK = re.compile(r"/sign/([A-Za-z0-9_-]{20,})")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
METRICS_FLUSH_S = 2.5
APS_DEFAULT = 500  # Temporal Cloud's default namespace limit (docs.temporal.io/cloud/limits)
STEPS = [
    ("quote_create", "POST /quotes"),
    ("submit", "POST /quotes/{id}/submit"),
    ("approved", "submit answered -> store approved"),
    ("contract_send", "POST /deals/{id}/contract"),
    ("invited", "contract answered -> customer invited"),
    ("customer_open", "customer GET /sign/{token}"),
    ("customer_sign", "customer POST /sign/{token}/sign"),
    ("our_turn", "customer signed -> ours invited"),
    ("ours_sign", "ours POST /envelopes/{id}/sign"),
    ("sealed_won", "ours signed -> store won (sealed)"),
    ("total", "quote create -> won"),
]
AFTER_WON = [
    ("deal_closed", "won -> DealWorkflow closed"),
    ("renewal_asleep", "won -> RenewalWorkflow asleep"),
]
T = TypeVar("T")


# ---------------------------------------------------------------- the baseline workflow
@activity.defn(name="bench_raw_echo")
async def raw_echo(n: int) -> int:
    return n


@workflow.defn
class RawWorkflow:
    """The baseline: one local activity (as the deal process's cheap store writes are)."""

    @workflow.run
    async def run(self, n: int) -> int:
        return int(await workflow.execute_local_activity(
            "bench_raw_echo", n, start_to_close_timeout=timedelta(seconds=10)))


def raw_workflow() -> type[RawWorkflow]:
    """RawWorkflow under its module name: the sandbox can't re-import ``__main__``."""
    from bench.lifecycle import RawWorkflow as imported

    return imported


async def raw_round(client: Client, start: int, count: int, concurrency: int) -> float:
    """``count`` RawWorkflows started and completed, ``concurrency`` at a time; seconds."""
    wf = raw_workflow()
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            assert await client.execute_workflow(wf.run, i, id=f"bench-raw-{i}",
                                                 task_queue=RAW_QUEUE) == i

    t0 = time.perf_counter()
    await asyncio.gather(*(one(start + i) for i in range(count)))
    return time.perf_counter() - t0


# ---------------------------------------------------------------- one deal, over HTTP
@dataclass
class DealRun:
    n: int
    times: dict[str, float] = field(default_factory=dict)
    deal_id: int = 0
    quote_id: int = 0
    envelope_id: int = 0
    t_won: float = 0.0
    t_start: float = 0.0
    workflows: dict[str, str] = field(default_factory=dict)
    """workflow id -> what it is, filled once the deal has settled."""


async def until(read: Callable[[], T | None], what: str) -> T:
    """Poll the store until ``read`` answers something truthy."""
    deadline = time.perf_counter() + STEP_TIMEOUT_S
    while True:
        value = read()
        if value:
            return value
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)


async def timed(out: dict[str, float], key: str, call: Awaitable[T]) -> T:
    t0 = time.perf_counter()
    result = await call
    out[key] = time.perf_counter() - t0
    return result


def ok(r: httpx.Response, *codes: int) -> httpx.Response:
    if r.status_code not in codes:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} "
                           f"{r.text[:500]}")
    return r


class Driver:
    def __init__(self, url: str, sessions: sessionmaker[Session], rep: httpx.AsyncClient,
                 rep_name: str, rep_email: str, account_id: int) -> None:
        self.url, self.sessions, self.rep = url, sessions, rep
        self.rep_name, self.rep_email, self.account_id = rep_name, rep_email, account_id

    def _read(self, fn: Callable[[Session], T]) -> T:
        with self.sessions() as s:
            return fn(s)

    def quote_status(self, qid: int, status: str) -> Callable[[], bool]:
        return lambda: self._read(lambda s: s.scalar(
            select(Quote.status).where(Quote.id == qid))) == status

    def link_of(self, email: str) -> Callable[[], str | None]:
        def read(s: Session) -> str | None:
            for body in s.scalars(select(OutboxMessage.body).where(
                    OutboxMessage.to_addr == email).order_by(OutboxMessage.id.desc())):
                if m := LINK.search(body or ""):
                    return m.group(1)
            return None
        return lambda: self._read(read)

    def recipient_sent(self, envelope_id: int, email: str) -> Callable[[], bool]:
        return lambda: self._read(lambda s: s.scalar(select(EnvelopeRecipient.status).where(
            EnvelopeRecipient.envelope_id == envelope_id,
            EnvelopeRecipient.email == email))) in ("sent", "viewed")

    async def deal(self, d: DealRun) -> None:
        t, rep = d.times, self.rep
        customer = f"buyer{d.n}.{uuid.uuid4().hex[:6]}@customer.test"
        d.t_start = time.perf_counter()
        q = (await timed(t, "quote_create", rep.post("/api/v1/quotes", json=quote_body(
            self.account_id, title=f"Lifecycle {d.n}")))).json()
        d.quote_id, d.deal_id = q["id"], q["deal_id"]
        ok(await timed(t, "submit", rep.post(f"/api/v1/quotes/{d.quote_id}/submit")), 202)
        await timed(t, "approved", until(self.quote_status(d.quote_id, "approved"),
                                          f"quote {d.quote_id} approved"))
        r = ok(await timed(t, "contract_send", rep.post(
            f"/api/v1/deals/{d.deal_id}/contract",
            json={"signers": [{"name": f"Buyer {d.n}", "email": customer, "title": "CEO"},
                              {"name": self.rep_name, "email": self.rep_email,
                               "title": "Account Executive"}]},
            headers={"Idempotency-Key": f"lifecycle-{d.n}-{uuid.uuid4().hex}"})), 201)
        d.envelope_id = r.json()["envelope_id"]
        token = await timed(t, "invited", until(self.link_of(customer),
                                                 f"envelope {d.envelope_id} invitation"))
        async with httpx.AsyncClient(base_url=self.url, timeout=120) as browser:
            page = ok(await timed(t, "customer_open", browser.get(f"/sign/{token}")), 200)
            csrf = CSRF.search(page.text)
            assert csrf, "no CSRF token on the signing page"
            ok(await timed(t, "customer_sign", browser.post(f"/sign/{token}/sign", data={
                "csrf_token": csrf.group(1), "typed_name": f"Buyer {d.n}", "agree": "yes"})),
               200)
        await timed(t, "our_turn", until(self.recipient_sent(d.envelope_id, self.rep_email),
                                          f"envelope {d.envelope_id}: our turn"))
        ok(await timed(t, "ours_sign", rep.post(f"/envelopes/{d.envelope_id}/sign", data={
            "typed_name": self.rep_name, "agree": "yes"})), 200, 303)
        await timed(t, "sealed_won", until(self.quote_status(d.quote_id, "won"),
                                            f"quote {d.quote_id} won"))
        d.t_won = time.perf_counter()
        t["total"] = d.t_won - d.t_start


# ---------------------------------------------------------------- settling and histories
async def is_asleep(client: Client, wid: str) -> bool:
    """Closed, or open with nothing to do until a timer fires (no activity, child or
    workflow task pending)."""
    try:
        desc = await client.get_workflow_handle(wid).describe()
    except RPCError:
        return False  # not started yet
    if desc.status != WorkflowExecutionStatus.RUNNING:
        return True
    raw = desc.raw_description
    if raw.pending_activities or raw.pending_children or raw.HasField("pending_workflow_task"):
        return False
    history = await client.get_workflow_handle(wid).fetch_history()
    return history.events[-1].event_type == EventType.EVENT_TYPE_TIMER_STARTED or any(
        e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events[-3:])


async def settle(client: Client, sessions: sessionmaker[Session], prefix: str, d: DealRun,
                 after: dict[str, list[float]]) -> None:
    """Wait until everything the deal started is closed or asleep; note its workflows."""
    deal_wf = deal_workflow_id(prefix, d.deal_id)
    await asyncio.wait_for(client.get_workflow_handle(deal_wf).result(), STEP_TIMEOUT_S)
    after["deal_closed"].append(time.perf_counter() - d.t_won)
    with sessions() as s:
        env_wf = s.scalar(select(Envelope.workflow_id).where(Envelope.id == d.envelope_id))
        sub_id = s.scalar(select(Subscription.id).where(Subscription.quote_id == d.quote_id))
    assert env_wf and sub_id, f"deal {d.deal_id}: no envelope workflow or subscription"
    d.workflows = {deal_wf: "DealWorkflow",
                   chain_workflow_id(prefix, d.quote_id, 1): "ApprovalChainWorkflow",
                   env_wf: "EnvelopeWorkflow",
                   billing_workflow_id(prefix, d.quote_id): "BillingWorkflow",
                   renewal_workflow_id(prefix, sub_id): "RenewalWorkflow"}
    deadline = time.perf_counter() + STEP_TIMEOUT_S
    for wid in d.workflows:
        while not await is_asleep(client, wid):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{wid} did not settle")
            await asyncio.sleep(0.25)
    after["renewal_asleep"].append(time.perf_counter() - d.t_won)


@dataclass
class Tally:
    actions: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(workflow type, kind) -> actions."""
    detail: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(workflow type, what: an activity's name, a timer, a signal...) -> actions."""
    events: Counter[str] = field(default_factory=Counter)
    tasks: Counter[str] = field(default_factory=Counter)
    free: Counter[str] = field(default_factory=Counter)
    """History events that cost no action but are worth naming (patch markers)."""


def _marker_name(e: HistoryEvent) -> str:
    m = e.marker_recorded_event_attributes
    if "local_activity" not in m.marker_name.lower():
        return m.marker_name  # core_patch: workflow.patched()
    with contextlib.suppress(Exception):
        data = json.loads(m.details["data"].payloads[0].data)
        return str(data.get("activity_type") or data.get("activityType") or "local activity")
    return "local activity"


def count_history(wtype: str, events: list[HistoryEvent], tally: Tally) -> None:
    """Temporal Cloud actions in one history (docs.temporal.io/cloud/actions)."""
    E = EventType
    add, detail = tally.actions, tally.detail
    tally.events[wtype] += len(events)
    markers: dict[int, list[str]] = {}
    activities: dict[int, str] = {}
    for e in events:
        et = e.event_type
        if et == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            tally.tasks[wtype] += 1
            retries = e.workflow_task_completed_event_attributes.metering_metadata \
                .nonfirst_local_activity_execution_attempts
            if retries:
                add[wtype, "local activity retry"] += retries
                detail[wtype, "local activity retries"] += retries
        elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            if not e.workflow_execution_started_event_attributes.HasField(
                    "parent_workflow_execution"):  # a child's start is its parent's 2
                add[wtype, "workflow start"] += 1
                detail[wtype, "workflow start"] += 1
        elif et == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            child = e.start_child_workflow_execution_initiated_event_attributes.workflow_type.name
            add[child, "child workflow start (2 each)"] += 2
            detail[child, f"started as a child of {wtype}"] += 2
        elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            if e.event_id != 2:  # at 2, after Started: signal-with-start, one action in all
                name = e.workflow_execution_signaled_event_attributes.signal_name
                add[wtype, "signal"] += 1
                detail[wtype, f"signal {name}"] += 1
        elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            name = e.workflow_execution_update_accepted_event_attributes.accepted_request \
                .input.name
            add[wtype, "update"] += 1
            detail[wtype, f"update {name}"] += 1
        elif et == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            activities[e.event_id] = name
            add[wtype, "activity"] += 1
            detail[wtype, f"activity {name}"] += 1
        elif et == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = e.activity_task_started_event_attributes
            if started.attempt > 1:
                add[wtype, "activity retry"] += started.attempt - 1
                detail[wtype, "retry of activity "
                       f"{activities.get(started.scheduled_event_id, '?')}"] += \
                    started.attempt - 1
        elif et == E.EVENT_TYPE_MARKER_RECORDED:
            # Every marker a workflow task records (local activities, patches) is one
            # action together: the server's command_BatchMarkers.
            markers.setdefault(e.marker_recorded_event_attributes
                               .workflow_task_completed_event_id, []).append(_marker_name(e))
        elif et == E.EVENT_TYPE_TIMER_STARTED:
            add[wtype, "timer"] += 1
            detail[wtype, "timer"] += 1
        elif et == E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            keys = set(e.upsert_workflow_search_attributes_event_attributes.search_attributes
                       .indexed_fields)
            if keys - {"TemporalChangeVersion"}:
                add[wtype, "search attribute upsert"] += 1
            else:
                tally.free[f"{wtype}: TemporalChangeVersion upsert"] += 1
        elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            add[wtype, "continue-as-new"] += 1
        elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED:
            add[wtype, "options updated"] += 1
    for names in markers.values():
        add[wtype, "markers (local activities, patches; 1 per workflow task)"] += 1
        detail[wtype, "markers " + "+".join(sorted(set(names)))] += 1


async def tally_workflows(client: Client, workflows: dict[str, str]) -> Tally:
    tally = Tally()
    for wid, wtype in workflows.items():
        history = await client.get_workflow_handle(wid).fetch_history()
        count_history(wtype, list(history.events), tally)
    return tally


# ---------------------------------------------------------------- the server's counter
async def action_metric(client: httpx.AsyncClient, url: str) -> Counter[str]:
    """The dev server's ``action`` counter for the default namespace, by action type."""
    await asyncio.sleep(METRICS_FLUSH_S)  # the server reports its counters every second
    out: Counter[str] = Counter()
    text = (await client.get(url)).text
    for line in text.splitlines():
        if line.startswith("action{") and 'namespace="default"' in line:
            kind = re.search(r'action_type="([^"]+)"', line)
            out[kind.group(1) if kind else "?"] += int(float(line.rsplit(" ", 1)[1]))
    return out


# ---------------------------------------------------------------- the run
async def run(n_deals: int, concurrency: int, raw_factor: int) -> int:
    print(machine_note("start"))
    print(f"deals={n_deals} concurrency={concurrency} raw workflows={n_deals * raw_factor}")
    with temp_root("dealdesk-bench-lifecycle-") as root, temporal_server(root) as server:
        url_db = f"sqlite:///{root / 'dealdesk.db'}"
        upgrade(url_db)
        settings = bench_settings(root, url_db, server.address)
        prefix = settings.workflow_prefix
        engine = make_engine(url_db)
        sessions = make_session_factory(engine)
        with sessions.begin() as s:
            rep = make_user(s, "Rae Rep", "rep")
            make_user(s, "Mo Manager", "sales_manager")
            account_id = make_account(s, "Initech").id
            load_policy(s, POLICY)
            rep_name, rep_email = rep.name, rep.email
        client = await connect(settings)
        metrics_url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        raw_worker = Worker(client, task_queue=RAW_QUEUE, workflows=[raw_workflow()],
                            activities=[raw_echo], workflow_runner=SandboxedWorkflowRunner(
                                restrictions=SandboxRestrictions.default
                                .with_passthrough_all_modules()))
        after: dict[str, list[float]] = defaultdict(list)
        async with raw_worker, deployed(settings) as url, httpx.AsyncClient() as plain:
            rep_http = httpx.AsyncClient(base_url=url, timeout=120)
            r = ok(await rep_http.post("/api/v1/auth/token",
                                       json={"email": rep_email, "password": "pw"}), 200)
            rep_http.headers["Authorization"] = f"Bearer {r.json()['token']}"
            driver = Driver(url, sessions, rep_http, rep_name, rep_email, account_id)

            # Warm-up: LibreOffice, the sandbox, every workflow type's first task.
            warm = DealRun(0)
            t0 = time.perf_counter()
            await driver.deal(warm)
            await settle(client, sessions, prefix, warm, defaultdict(list))
            after.clear()
            await raw_round(client, 10_000_000, 20, concurrency)
            print(f"warm-up deal won in {warm.times['total']:.1f} s, settled after "
                  f"{time.perf_counter() - t0:.1f} s (not counted)")

            n_raw = n_deals * raw_factor
            half = n_raw // 2
            m0 = await action_metric(plain, metrics_url)
            raw_before = await raw_round(client, 0, half, concurrency)
            m1 = await action_metric(plain, metrics_url)

            # The deals.
            runs = [DealRun(i + 1) for i in range(n_deals)]
            gate = asyncio.Semaphore(concurrency)
            settling: list[asyncio.Task[None]] = []
            failures: list[str] = []

            async def one(d: DealRun) -> None:
                async with gate:
                    try:
                        await driver.deal(d)
                    except Exception as e:
                        failures.append(f"deal #{d.n}: {e}")
                        return
                settling.append(asyncio.create_task(
                    settle(client, sessions, prefix, d, after)))

            m2 = m1
            t_deals = time.perf_counter()
            await asyncio.gather(*(one(d) for d in runs))
            done = [d for d in runs if d.t_won]
            wall = max(d.t_won for d in done) - t_deals if done else float("nan")
            await asyncio.gather(*settling)
            m3 = await action_metric(plain, metrics_url)
            settled_after = time.perf_counter() - t_deals

            await asyncio.sleep(1)
            raw_after = await raw_round(client, half, n_raw - half, concurrency)

            # Histories: every workflow each deal touched, and what else visibility lists.
            tally = Tally()
            known: set[str] = set()
            for d in done:
                known.update(d.workflows)
                part = await tally_workflows(client, d.workflows)
                for attr in ("actions", "detail", "events", "tasks", "free"):
                    getattr(tally, attr).update(getattr(part, attr))
            raw_tally = await tally_workflows(client, {"bench-raw-0": "RawWorkflow"})
            others: Counter[str] = Counter()
            async for wf in client.list_workflows():
                if wf.id not in known | set(warm.workflows) \
                        and not wf.id.startswith("bench-raw-"):
                    others[wf.workflow_type or "?"] += 1
            await rep_http.aclose()
        engine.dispose()

    report(n_deals, concurrency, runs, done, failures, wall, settled_after, after,
           (half, raw_before), (n_raw - half, raw_after), tally, raw_tally,
           m1 - m0, half, m3 - m2, others)
    print(machine_note("end"))
    return 1 if failures else 0


def report(n_deals: int, concurrency: int, runs: list[DealRun], done: list[DealRun],
           failures: list[str], wall: float, settled_after: float,
           after: dict[str, list[float]], before: tuple[int, float], later: tuple[int, float],
           tally: Tally, raw_tally: Tally, raw_metric: Counter[str], raw_n: int,
           deal_metric: Counter[str], others: Counter[str]) -> None:
    n = len(done)
    print()
    for f in failures:
        print(f"FAILED {f}")
    print(f"== time per step ({n} deals, {concurrency} at a time; ms)")
    for key, label in STEPS:
        samples = [d.times[key] for d in done if key in d.times]
        if samples:
            print(summary(f"{key:<14} {label}", samples).replace(" ms", ""))
    for key, label in AFTER_WON:
        if after.get(key):
            print(summary(f"{key:<14} {label}", after[key]).replace(" ms", ""))
    if n:
        mean = {k: sum(d.times[k] for d in done) / n for k, _ in STEPS if k != "total"}
        whole = sum(mean.values())
        print("share of a deal's time: " + ", ".join(
            f"{k} {100 * v / whole:.0f}%" for k, v in sorted(mean.items(), key=lambda kv: -kv[1])
            if v / whole >= 0.02))

    print("\n== throughput")
    deals_pm = 60 * n / wall if n else 0.0
    print(f"deals quote -> signed contract (won): {n} in {wall:.1f} s = {deals_pm:.1f} deals/min "
          f"(everything settled after {settled_after:.1f} s)")
    rates = []
    for label, (count, secs) in (("before the deals", before), ("after the deals", later)):
        rate = 60 * count / secs
        rates.append(rate)
        print(f"raw workflows (1 local activity), {label}: {count} in {secs:.1f} s = "
              f"{rate:.0f} workflows/min")
    raw_pm = sum(rates) / len(rates)
    raw_actions = sum(raw_tally.actions.values())
    print(f"ratio deals/min / raw workflows/min = {deals_pm / raw_pm:.4f} "
          f"(1 deal ~ {raw_pm / deals_pm:.0f} raw workflows of time)" if deals_pm else "")

    print("\n== Temporal Cloud actions per deal, from the histories "
          "(docs.temporal.io/cloud/actions)")
    total = sum(tally.actions.values())
    per = total / n if n else 0.0
    by_type: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    for (wtype, kind), c in tally.actions.items():
        by_type[wtype] += c
        by_kind[kind] += c
    print(f"actions per deal: {per:.1f}   (raw workflow: "
          f"{sum(raw_tally.actions.values()):.0f}: "
          + ", ".join(f"{k} {v}" for (_, k), v in sorted(raw_tally.actions.items())) + ")")
    print("by workflow type:")
    for wtype, c in by_type.most_common():
        kinds = ", ".join(f"{k} {v / n:.2g}" for (t, k), v in sorted(
            tally.actions.items(), key=lambda kv: -kv[1]) if t == wtype)
        print(f"  {wtype:<24} {c / n:5.1f}   [{kinds}]   events {tally.events[wtype] / n:.1f}, "
              f"workflow tasks {tally.tasks[wtype] / n:.1f}")
    print("by kind:")
    for kind, c in by_kind.most_common():
        print(f"  {kind:<40} {c / n:5.1f}")
    print("biggest contributors (workflow type: what):")
    for (wtype, what), c in tally.detail.most_common(10):
        print(f"  {c / n:5.1f}  {wtype}: {what}")
    retried = [(k, v) for k, v in tally.detail.items() if "retr" in k[1]]
    print("retries: " + (", ".join(f"{t}: {w} {v / n:.2f}" for (t, w), v in retried)
                         or "none"))
    if tally.free:
        print("in history, no action: " + ", ".join(
            f"{k} {v / n:g}" for k, v in tally.free.most_common()))
    if deals_pm:
        print(f"actions/s while deals ran: {per * n / wall:.1f}; the raw baseline's: "
              f"{raw_pm * raw_actions / 60:.1f}")
        print(f"at {per:.0f} actions a deal, a "
              f"namespace at Cloud's default {APS_DEFAULT} APS bounds throughput at "
              f"{APS_DEFAULT * 60 / per:,.0f} deals/min" if per else "")

    print("\n== cross-check: the dev server's `action` counter (namespace default), per deal")
    print("   (counts what history does not: queries, heartbeats, rejected updates; its "
          "types are the server's, not Cloud's billing names)")
    for kind, c in deal_metric.most_common():
        print(f"  {kind:<52} {c / n:6.1f}" if n else "")
    print(f"  {'total':<52} {sum(deal_metric.values()) / n:6.1f}" if n else "")
    beats = sum(c for k, c in deal_metric.items() if "Heartbeat" in k)
    if n:
        print(f"best estimate per deal: {per:.1f} from the histories + {beats / n:.1f} activity "
              f"heartbeats (the server's counter; no queries, no rejected updates in this flow) "
              f"= {per + beats / n:.1f}")
    if raw_n:
        print(f"  raw workflow: {sum(raw_metric.values()) / raw_n:.1f} per workflow ("
              + ", ".join(f"{k} {v / raw_n:g}" for k, v in raw_metric.most_common()) + ")")
    others_note = ", ".join(f"{k} {v}" for k, v in others.most_common())
    print(f"workflows listed by visibility that belong to no deal (warm-up and raw ones "
          f"aside): {others_note or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=20, help="counted deals (default 20)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="deals in flight at once, and raw workflows (default 4)")
    parser.add_argument("--raw-factor", type=int, default=25,
                        help="raw workflows per deal in the baseline (default 25)")
    args = parser.parse_args()
    finish(asyncio.run(run(args.deals, args.concurrency, args.raw_factor)))


if __name__ == "__main__":
    main()
