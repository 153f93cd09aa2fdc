"""Inbox latency at scale (100,000 open tasks) vs. the inbox's core SQL, on SQLite and PG.

    .venv/bin/python -m bench.inbox_scale [--tasks 100000] [--requests 50] [--no-pg]

Bulk-inserts users, accounts, quotes, requests and open tasks spread over 20 queues (the 5
approver-role queues and 15 named-user queues), then times GET /inbox (HTML, cookie session)
and GET /api/v1/inbox (bearer token) over 10 users, and, as the baseline, the visibility
queries inbox() issues, run as raw SQL on the app's own engine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

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
from store.db import make_engine
from store.migrate import upgrade
from store.models import (
    APPROVER_ROLES,
    Account,
    ApprovalRequest,
    ApprovalTask,
    Quote,
    User,
    UserRole,
)
from web.services.passwords import hash_password
from web.services.tasks import InboxFilter, inbox_queries

TARGET_MS = 50.0
N_USERS, N_NAMED, N_ACCOUNTS, N_QUOTES = 500, 15, 50, 300
PROBES = [0, 1, 2, 3, 4, 15, 16, 17, 18, 20]  # 5 named-queue users, 5 role-only approvers


def roles_of(i: int) -> list[str]:
    """Users 0-14 own the named queues; 15-414 are approvers; the rest reps/auditors/admins."""
    if i < 415:
        roles = [APPROVER_ROLES[i % 5]]
        if i % 2 == 0:
            roles.append(APPROVER_ROLES[(i + 2) % 5])
        return roles
    return ["auditor"] if i % 20 == 0 else ["admin"] if i % 50 == 1 else ["rep"]


def seed(engine: Engine, n_tasks: int) -> None:
    now = dt.datetime.now(dt.UTC)
    pw = hash_password("pw")
    users = [dict(id=i + 1, email=f"u{i}@bench.example", name=f"User {i}", password_hash=pw,
                  manager_id=None, is_active=True, created_at=now) for i in range(N_USERS)]
    roles = [dict(user_id=i + 1, role=r) for i in range(N_USERS) for r in roles_of(i)]
    accounts = [dict(id=a + 1, name=f"Account {a}", region="NA", segment="mid-market",
                     created_at=now) for a in range(N_ACCOUNTS)]
    quotes = [dict(id=q + 1, account_id=q % N_ACCOUNTS + 1, owner_id=415 + q % 80 + 1,
                   title=f"Quote {q}", currency="USD", list_amount=10_000_000,
                   net_amount=5_000_000 + 10_000 * q, cost_amount=2_000_000, term_months=12,
                   nonstandard_terms=[], product_families=[], version=1,
                   status="pending_approval", created_at=now, updated_at=now)
              for q in range(N_QUOTES)]
    requests = [dict(id=q["id"], workflow_id=f"bench-quote-{q['id']}-v1", quote_id=q["id"],
                     quote_version=1, policy_name="bench", policy_version=1,
                     submitted_by_id=q["owner_id"], status="running", revision=1,
                     created_at=now, completed_at=None) for q in quotes]

    def task(i: int) -> dict[str, object]:
        q = quotes[(i // 20) % N_QUOTES]
        lane = i % 20  # 0-4: role queues, 5-19: named users 0-14
        role = APPROVER_ROLES[lane] if lane < 5 else None
        claimed = 15 + lane + 5 * (i % 7) + 1 if role and i % 50 == 0 else None
        return dict(
            id=f"bench-quote-{q['id']}-v1.step.{lane}.{i}", request_id=q["id"],
            workflow_id=f"bench-quote-{q['id']}-v1", quote_id=q["id"], quote_version=1,
            account_id=q["account_id"], amount=q["net_amount"], currency="USD",
            step_key="step", step_name="Approval", group_index=0, seat=lane,
            queue_role=role, assignee_id=None if role else lane - 5 + 1,
            on_behalf_of_id=None, claimed_by_id=claimed, escalated_from=None, state="open",
            decided_by_id=None, decided_at=None, comment=None, created_at=now,
            due_at=None if i % 10 == 3 else now + dt.timedelta(minutes=(i * 7919) % 40000 - 8000),
            reminded_at=None)

    with engine.begin() as conn:
        for model, rows in ((User, users), (UserRole, roles), (Account, accounts),
                            (Quote, quotes), (ApprovalRequest, requests)):
            conn.execute(model.__table__.insert(), rows)  # type: ignore[attr-defined]
        for start in range(0, n_tasks, 10_000):
            conn.execute(ApprovalTask.__table__.insert(),
                         [task(i) for i in range(start, min(start + 10_000, n_tasks))])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum would soon have done


def core_sql(engine: Engine, user: User) -> list[str]:
    """The visibility queries inbox() runs for the default view, as literal SQL."""
    return [str(q.compile(engine, compile_kwargs={"literal_binds": True}))
            for q in inbox_queries(user, InboxFilter())]


@dataclass
class Probe:
    email: str
    sql: list[str]
    page: httpx.AsyncClient | None = None
    api: httpx.AsyncClient | None = None


async def login(base_url: str, probe: Probe) -> None:
    page = httpx.AsyncClient(base_url=base_url, timeout=60)
    form = await page.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, "no csrf_token on /login"
    r = await page.post("/login", data={"email": probe.email, "password": "pw",
                                        "csrf_token": csrf.group(1)})
    assert r.status_code == 303, r.text
    api = httpx.AsyncClient(base_url=base_url, timeout=60)
    r = await api.post("/api/v1/auth/token", json={"email": probe.email, "password": "pw"})
    r.raise_for_status()
    api.headers["Authorization"] = f"Bearer {r.json()['token']}"
    probe.page, probe.api = page, api


async def timed_get(client: httpx.AsyncClient | None, path: str) -> float:
    assert client is not None
    t0 = time.perf_counter()
    r = await client.get(path)
    elapsed = time.perf_counter() - t0
    if r.status_code != 200 or ("api" in path and len(r.json()) != 100):
        raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:300]}")
    return elapsed


def raw_query(engine: Engine, sqls: list[str]) -> float:
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for sql in sqls:
            conn.exec_driver_sql(sql).fetchall()
    return time.perf_counter() - t0


async def measure(label: str, url: str, address: str, root_name: str, n_tasks: int,
                  requests: int) -> None:
    with temp_root(root_name) as root:
        upgrade(url)
        t0 = time.perf_counter()
        settings = bench_settings(root, url, address)
        engine = make_engine(url)  # configured as the app's own (store.db)
        seed(engine, n_tasks)
        print(f"\n== {label}: {n_tasks} open tasks, {N_USERS} users, 20 queues; "
              f"seeded in {time.perf_counter() - t0:.1f} s ==")
        async with deployed(settings) as base_url:
            probes = []
            with Session(engine) as s:
                for i in PROBES:
                    user = s.scalars(select(User).where(User.email == f"u{i}@bench.example")
                                     ).one()
                    probes.append(Probe(user.email, core_sql(engine, user)))
            for p in probes:
                await login(base_url, p)
            kinds: dict[str, Callable[[Probe], Awaitable[float]]] = {
                "raw core SQL (app's engine config)": lambda p: asyncio.to_thread(
                    raw_query, engine, p.sql),
                "GET /inbox (HTML, cookie)": lambda p: timed_get(p.page, "/inbox"),
                "GET /api/v1/inbox (JSON, bearer)": lambda p: timed_get(p.api,
                                                                        "/api/v1/inbox"),
            }
            results: dict[str, list[float]] = {k: [] for k in kinds}
            for p in probes:  # warm-up: one of each per user
                for run_one in kinds.values():
                    await run_one(p)
            for k in range(requests):  # interleaved, so machine noise hits all alike
                p = probes[k % len(probes)]
                for name, run_one in kinds.items():
                    results[name].append(await run_one(p))
            for p in probes:
                for c in (p.page, p.api):
                    if c is not None:
                        await c.aclose()
        engine.dispose()
    raw, page, api = results.values()
    for name, samples in results.items():
        print(summary(name, samples))
    print(f"ratio page_p95/raw_p95 = {pct(page, 95) / pct(raw, 95):.1f}   "
          f"api_p95/raw_p95 = {pct(api, 95) / pct(raw, 95):.1f}")
    print(f"target GET /inbox p95 < {TARGET_MS:g} ms:        {verdict(pct(page, 95) < TARGET_MS)}")
    print(f"target GET /api/v1/inbox p95 < {TARGET_MS:g} ms: {verdict(pct(api, 95) < TARGET_MS)}")


async def run(n_tasks: int, requests: int, pg: bool) -> int:
    print(machine_note("start"))
    with temp_root("dealdesk-bench-inbox-") as root, temporal_server(root) as server:
        await measure("SQLite", f"sqlite:///{root / 'dealdesk.db'}", server.address,
                      "dealdesk-bench-sqlite-", n_tasks, requests)
        if pg:
            from tests.pg import PostgresServer

            pg_server = PostgresServer()
            try:
                pg_server.start()
            except RuntimeError as e:
                print(f"\n== PostgreSQL: skipped ({e}) ==")
            else:
                try:
                    url = pg_server.create_database("bench_inbox")
                    await measure("PostgreSQL", url, server.address, "dealdesk-bench-pg-",
                                  n_tasks, requests)
                finally:
                    pg_server.stop()
    print()
    print(machine_note("end"))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000, help="open tasks (100,000)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests of each kind")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args()
    finish(asyncio.run(run(args.tasks, args.requests, not args.no_pg)))


if __name__ == "__main__":
    main()
