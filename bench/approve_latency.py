"""HTTP approve latency vs. a raw Temporal Update round-trip, measured in the same run.

    .venv/bin/python -m bench.approve_latency [--n 200] [--pace 0.3]

Starts its own Temporal dev server and a migrated temp SQLite store, runs ``dealdesk worker``
and ``dealdesk web`` as separate processes (as ``dealdesk up`` does), submits ``2n`` quotes
under a one-step (any sales manager) policy, then times ``n`` paced and ``n`` back-to-back
``POST /api/v1/tasks/{id}/decision`` approvals. The baseline is an ``execute_update`` on a
tiny workflow whose handler just returns, one per paced approval and interleaved with them,
so that both see the same machine (this VM's speed drifts by 2x from minute to minute).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from sqlalchemy import func, select
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench._common import (
    bench_settings,
    deployed,
    finish,
    machine_note,
    pct,
    summary,
    temp_root,
    temporal_server,
    verdict,
)
from dealdesk.runtime import connect
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import ApprovalTask
from tests.support import load_policy, make_account, make_user
from tests.web_support import quote_body

POLICY = """
name: bench
steps:
  - key: manager
    name: Sales manager
    approvers: [{role: sales_manager}]
    mode: any
rules:
  - id: discount
    when: [{fact: discount_pct, op: gt, value: 10}]
    add: [manager]
"""
RAW_QUEUE = "bench-raw"
WARMUP = 10
TARGET_RATIO = 2.0
TARGET_MS = 100.0


@workflow.defn
class PingWorkflow:
    """The baseline: an Update handler that only returns (no activity, no store)."""

    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._done)

    @workflow.update
    def ping(self, n: int) -> int:
        return n

    @workflow.signal
    def finish(self) -> None:
        self._done = True


def ping_workflow() -> type[PingWorkflow]:
    """PingWorkflow as imported under its module name: the sandbox cannot re-import the
    ``__main__`` that ``python -m`` makes of this file."""
    from bench.approve_latency import PingWorkflow as imported

    return imported


class RawBaseline:
    """One ping workflow per paced approval, as the approvals are one per chain."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._ping = ping_workflow()
        self._handles: list[WorkflowHandle[PingWorkflow, None]] = []
        self.samples: list[float] = []

    async def start(self, count: int) -> None:
        self._handles = [await self._client.start_workflow(
            self._ping.run, id=f"bench-ping-{i}", task_queue=RAW_QUEUE)
            for i in range(count + WARMUP)]
        for h in self._handles[:WARMUP]:
            await h.execute_update(self._ping.ping, 0)

    async def sample(self) -> None:
        h = self._handles[WARMUP + len(self.samples)]
        t0 = time.perf_counter()
        assert await h.execute_update(self._ping.ping, 1) == 1
        self.samples.append(time.perf_counter() - t0)

    async def stop(self) -> None:
        for h in self._handles:
            await h.signal(self._ping.finish)


async def token_client(base_url: str, email: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url, timeout=60)
    r = await client.post("/api/v1/auth/token", json={"email": email, "password": "pw"})
    r.raise_for_status()
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return client


async def submit_quotes(rep: httpx.AsyncClient, account_id: int, count: int) -> None:
    gate = asyncio.Semaphore(4)  # more only queues on the store lock

    async def one(i: int) -> None:
        async with gate:
            r = await rep.post("/api/v1/quotes", json=quote_body(account_id, title=f"Bench {i}"))
            r.raise_for_status()
            r = await rep.post(f"/api/v1/quotes/{r.json()['id']}/submit")
            r.raise_for_status()

    await asyncio.gather(*(one(i) for i in range(count)))


async def run(n: int, pace: float) -> int:
    print(machine_note("start"))
    with temp_root("dealdesk-bench-approve-") as root, temporal_server(root) as server:
        url = f"sqlite:///{root / 'dealdesk.db'}"
        upgrade(url)
        settings = bench_settings(root, url, server.address)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        with sessions.begin() as s:
            rep = make_user(s, "Rae Rep", "rep")
            manager = make_user(s, "Mo Manager", "sales_manager")
            account_id = make_account(s).id
            load_policy(s, POLICY)
            rep_email, mgr_email = rep.email, manager.email
        client = await connect(settings)
        raw_worker = Worker(client, task_queue=RAW_QUEUE, workflows=[ping_workflow()],
                            workflow_runner=SandboxedWorkflowRunner(
                                restrictions=SandboxRestrictions.default
                                .with_passthrough_all_modules()))
        # The worker and the web app run as separate processes, as `dealdesk up` runs them;
        # the baseline's trivial worker runs here, beside the client.
        async with raw_worker, deployed(settings) as base_url:
            rep_c = await token_client(base_url, rep_email)
            mgr_c = await token_client(base_url, mgr_email)
            total = 2 * n + WARMUP  # n back to back, then n paced
            t0 = time.perf_counter()
            await submit_quotes(rep_c, account_id, total)
            deadline = time.monotonic() + 60 + total
            while True:
                with sessions() as s:
                    ids = list(s.scalars(select(ApprovalTask.id).where(
                        ApprovalTask.state == "open").order_by(ApprovalTask.quote_id)))
                if len(ids) >= total:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(ids)} of {total} tasks opened in time")
                await asyncio.sleep(0.2)
            print(f"setup: {total} quotes submitted, {len(ids)} tasks open in "
                  f"{time.perf_counter() - t0:.1f} s")
            await asyncio.sleep(2)  # let the chains' assignment notices drain

            raw = RawBaseline(client)
            await raw.start(n)

            async def approve(task_id: str) -> float:
                t = time.perf_counter()
                r = await mgr_c.post(f"/api/v1/tasks/{task_id}/decision",
                                     json={"decision": "approve"})
                elapsed = time.perf_counter() - t
                body = r.json()
                if r.status_code != 200 or body.get("state") != "approved":
                    raise RuntimeError(f"approve {task_id}: {r.status_code} {r.text}")
                return elapsed

            for task_id in ids[:WARMUP]:
                await approve(task_id)
            # An approver clicks, reads the confirmation, moves to the next row: `pace`
            # seconds between clicks (not timed). Each approval here ends a chain, whose
            # store writes and outcome mail then run in the worker; back-to-back clicks
            # (pace 0) measure how fast that background work drains instead of latency.
            # Paced first, so that no earlier burst's background work is still draining.
            half = WARMUP + n
            http = []
            for task_id in ids[WARMUP:half]:
                await asyncio.sleep(pace)  # each sample gets the same quiet time before it
                await raw.sample()
                await asyncio.sleep(pace)
                http.append(await approve(task_id))
            await raw.stop()
            back_to_back = [await approve(task_id) for task_id in ids[half:total]]
            # The responses came from the workflows; the store follows them. How far behind?
            t_last = time.perf_counter()
            while True:
                with sessions() as s:
                    still_open = s.scalar(select(func.count()).select_from(ApprovalTask)
                                          .where(ApprovalTask.state == "open"))
                if not still_open or time.perf_counter() - t_last > 60:
                    break
                await asyncio.sleep(0.05)
            caught_up = time.perf_counter() - t_last
            await rep_c.aclose()
            await mgr_c.aclose()
        engine.dispose()

    print(summary("raw Temporal update round-trip", raw.samples))
    print(summary("HTTP approve, back to back", back_to_back))
    print(summary(f"HTTP approve, {pace:g} s apart", http))
    ratio = pct(http, 95) / pct(raw.samples, 95)
    p50_ratio = pct(http, 50) / pct(raw.samples, 50)
    print(f"ratio p95_http/p95_raw = {ratio:.2f}  (p50 ratio {p50_ratio:.2f})")
    print(f"store caught up with the last approval {1000 * caught_up:.0f} ms after its "
          f"response" + (f" -- {still_open} tasks still open after 60 s" if still_open else ""))
    print(f"target p95_http <= {TARGET_RATIO:g} x p95_raw: {verdict(ratio <= TARGET_RATIO)}")
    print(f"target p95_http < {TARGET_MS:g} ms:        {verdict(pct(http, 95) < TARGET_MS)}")
    print(machine_note("end"))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="timed approvals (default 200)")
    parser.add_argument("--pace", type=float, default=0.3,
                        help="seconds between paced approvals (default 0.3)")
    args = parser.parse_args()
    finish(asyncio.run(run(args.n, args.pace)))


if __name__ == "__main__":
    main()
