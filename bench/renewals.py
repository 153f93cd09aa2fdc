"""Ten thousand subscriptions, each with its RenewalWorkflow waiting on timers: what the worker
and the Temporal server hold and spend while nothing is due, and the renewals page.

    .venv/bin/python -m bench.renewals [--subscriptions 10000] [--requests 50]

Starts a Temporal dev server, a migrated temp SQLite store, and ``dealdesk worker`` +
``dealdesk web`` as processes (as ``dealdesk up`` runs them). Bulk-inserts (Core executemany)
50 reps, 500 accounts and, per subscription, a won quote, its contract, the subscription and
its first term, renewing 20 to 400 days from now; then starts every RenewalWorkflow from its
``workflow_starts`` row, as the worker's reconciler would (``store.starts.start_pending``).
Each run reads its term and sleeps on its first timer; those renewing within 90 days make
their renewal quote at once.

It prints: starts per second; how long until the worker was idle (every run asleep on a
timer); then, over 30 s of idle, the worker's and the Temporal server's resident memory and
CPU (per cent of one core); the worker's memory per subscription; and ``GET /renewals`` and
``GET /api/v1/renewals?within_days=90`` (the first page of 50 and the whole window's summary
and chart), and the 120-day window's last page (``page=999``: past the end, the last), p50/p95
as the deal desk (target p95 < 100 ms) when the web app has them. Nothing here asserts a
timing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import time
from pathlib import Path

import httpx
from sqlalchemy import Engine, select

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
from store import starts
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import Account, Quote, User, UserRole
from store.starts import WorkflowStart
from store.subscriptions import Contract, Subscription, SubscriptionTerm, annual, term_end
from tests.support import make_user
from web.services.passwords import hash_password
from workflows.renewal_messages import RenewalInput

TARGET_MS = 100.0
N_REPS, N_ACCOUNTS = 50, 500


def seed(engine: Engine, n: int, task_queue: str, prefix: str) -> None:
    from temporalio.converter import DataConverter

    now = dt.datetime.now(dt.UTC)
    today = now.date()
    pw = hash_password("pw")
    converter = DataConverter.default.payload_converter
    users = [dict(id=i + 1, email=f"rep{i}@bench.example", name=f"Rep {i}", password_hash=pw,
                  manager_id=None, is_active=True, created_at=now) for i in range(N_REPS)]
    roles = [dict(user_id=i + 1, role="rep") for i in range(N_REPS)]
    accounts = [dict(id=a + 1, name=f"Account {a}", region="NA", segment="mid-market",
                     created_at=now) for a in range(N_ACCOUNTS)]
    quotes, contracts, subs, terms, pending = [], [], [], [], []
    for i in range(n):
        sid, months = i + 1, 12
        renews = today + dt.timedelta(days=20 + (i * 7919) % 380)
        end = renews - dt.timedelta(days=1)
        start = end - dt.timedelta(days=364)
        net = 600_000 + 1_000 * (i % 500)
        owner, account = i % N_REPS + 1, i % N_ACCOUNTS + 1
        quotes.append(dict(id=sid, account_id=account, owner_id=owner, title=f"Plan {i}",
                           currency="USD", list_amount=net, net_amount=net, cost_amount=net // 3,
                           term_months=months, nonstandard_terms=[], product_families=[],
                           version=1, status="won", created_at=now, updated_at=now,
                           won_at=now))
        contracts.append(dict(id=sid, quote_id=sid, account_id=account, kind="order_form",
                              parties=[], start_date=start, end_date=end, term_months=months,
                              created_at=now))
        subs.append(dict(id=sid, account_id=account, contract_id=sid, owner_id=owner,
                         quote_id=sid, name=f"Plan {i}", currency="USD",
                         arr=annual(net, months), term_number=1, term_start=start,
                         term_end=end, term_months=months, notice_days=30,
                         term_end_action="renew", uplift_pct="3", status="active",
                         at_risk=i % 9 == 0, risk_reason="", cancel_reason="",
                         created_at=now, updated_at=now))
        terms.append(dict(subscription_id=sid, number=1, start=start,
                          end=term_end(start, months), quote_id=sid, arr=annual(net, months)))
        payload = converter.to_payloads([RenewalInput(sid, 1)])[0]
        pending.append(dict(workflow_id=f"{prefix}renewal-{sid}",
                            workflow_type="RenewalWorkflow", task_queue=task_queue,
                            payload=payload.SerializeToString(), created_at=now, attempts=0))
    with engine.begin() as conn:
        for model, rows in ((User, users), (UserRole, roles), (Account, accounts),
                            (Quote, quotes), (Contract, contracts), (Subscription, subs),
                            (SubscriptionTerm, terms), (WorkflowStart, pending)):
            for at in range(0, len(rows), 5_000):
                conn.execute(model.__table__.insert(), rows[at:at + 5_000])  # type: ignore[attr-defined]


def process_of(pattern: str) -> int | None:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if re.search(pattern.encode(), cmd):
                return int(pid)
    return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def until_idle(pid: int, window: float = 5.0, below: float = 0.05) -> float:
    """Seconds until the process spent less than ``below`` of a core over ``window``."""
    t0 = time.perf_counter()
    while True:
        c0 = cpu_seconds(pid)
        await asyncio.sleep(window)
        if (cpu_seconds(pid) - c0) / window < below:
            return time.perf_counter() - t0 - window


async def timed(client: httpx.AsyncClient, path: str, n: int) -> list[float] | None:
    r = await client.get(path)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get(path)
        samples.append(time.perf_counter() - t0)
        r.raise_for_status()
    return samples


async def main(n: int, requests: int) -> None:
    print(machine_note("start"))
    with temp_root("dealdesk-bench-renewals-") as root, temporal_server(root) as server:
        url = f"sqlite:///{root / 'dealdesk.db'}"
        upgrade(url)
        settings = bench_settings(root, url, server.address)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        t0 = time.perf_counter()
        seed(engine, n, settings.task_queue, settings.workflow_prefix)
        with sessions.begin() as s:
            desk = make_user(s, "Dee Desk", "deal_desk", email="desk@bench.example")
            desk_email = desk.email
        print(f"seeded {n} subscriptions in {time.perf_counter() - t0:.1f} s")
        client = await connect(settings)
        async with deployed(settings) as base_url:
            worker = process_of(r"dealdesk worker")
            port = server.address.rsplit(":", 1)[1]
            temporal = process_of(rf"temporal server start-dev .*--port {port} ")
            assert worker is not None and temporal is not None
            t0 = time.perf_counter()
            left = n
            while left:  # the reconciler's job, done here at full speed and timed
                left = await starts.start_pending(client, sessions,
                                                  older_than=dt.timedelta(0))
            started_in = time.perf_counter() - t0
            print(f"started {n} RenewalWorkflows in {started_in:.1f} s "
                  f"({n / started_in:.0f}/s)")
            settled = await until_idle(worker)
            print(f"worker idle {settled:.0f} s after the last start (every run asleep on a "
                  "timer)")
            with sessions() as s:
                quoted = s.scalar(select(Subscription.id).where(
                    Subscription.renewal_quote_id.is_not(None)).limit(1))
            print(f"renewal quotes made at once (renewing within 90 days): "
                  f"{'yes' if quoted else 'none'}")
            c_w, c_t = cpu_seconds(worker), cpu_seconds(temporal)
            await asyncio.sleep(30)
            idle_w = (cpu_seconds(worker) - c_w) / 30 * 100
            idle_t = (cpu_seconds(temporal) - c_t) / 30 * 100
            mem_w, mem_t = rss_mb(worker), rss_mb(temporal)
            print(f"idle, over 30 s: worker {mem_w:.0f} MB resident, {idle_w:.1f} % of a core; "
                  f"Temporal server {mem_t:.0f} MB, {idle_t:.1f} %")
            print(f"worker memory per subscription: {mem_w * 1024 / n:.1f} KB "
                  "(the worker's workflow cache holds at most its size in runs; the rest are "
                  "on the server, replayed when a timer fires)")
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
                form = await http.get("/login")
                csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
                assert csrf
                await http.post("/login", data={"email": desk_email, "password": "pw",
                                                "csrf_token": csrf.group(1)})
                for path in ("/renewals?within_days=90", "/api/v1/renewals?within_days=90",
                             "/renewals?within_days=120&page=999"):
                    samples = await timed(http, path, requests)
                    if samples is None:
                        print(f"GET {path}: not in this build")
                        continue
                    print(summary(f"GET {path}", samples))
                    print(f"target p95 < {TARGET_MS:g} ms: "
                          f"{verdict(pct(samples, 95) < TARGET_MS)}")
        engine.dispose()
    print(machine_note("end"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.subscriptions, args.requests))
    finish()
