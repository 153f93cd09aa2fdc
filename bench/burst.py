"""One instance under a burst: /healthz latency during the burst over idle, and envelopes
created per second next to raw workflow starts per second, all in one run.

    .venv/bin/python -m bench.burst [--rounds 3]

Starts its own Temporal dev server, a migrated temp SQLite store and ``dealdesk worker`` +
``dealdesk web`` as separate processes (as ``dealdesk up`` runs them). Each round:

1. **idle**: /healthz polled every 50 ms for 3 s;
2. **burst**: the same polling while, at once, 20 envelopes are created through the API (10
   PDF, 10 Word), 20 logins fail (wrong passwords) and 50 tasks are approved;
3. **raw starts**: 50 trivial workflows started concurrently on the same server (their own
   queue, no worker needed: a start only records the workflow).

The same phases also probe ``bench._control``, a server in its own process that only answers
200: its ratio is the machine's floor, the wait that scheduling on the busy cores adds to any
server (on 2 cores it is itself 3-5x, above the target).

It prints p50/p95 of /healthz idle and during the bursts, ``p95_burst/p95_idle`` (target
≤ 2×) next to the control's, envelopes created per second (201s over the wall time of the 20
creates) next to raw starts per second, approvals per second, and how long the worker took
until every envelope was "sent" (Word conversions included). Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import docx
import httpx
from sqlalchemy import func, select

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
from dealdesk.devserver import free_port
from dealdesk.runtime import connect
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import ApprovalTask, Envelope
from tests.pdfs import contract_pdf
from tests.support import load_policy, make_account, make_user
from tests.web_support import POLICY, quote_body

TARGET_RATIO = 2.0
PER_ROUND = 50


def word_contract(n: int) -> bytes:
    document = docx.Document()
    document.add_heading(f"Order form {n}", 1)
    for i in range(12):
        document.add_paragraph(f"Clause {i + 1}. The parties agree to the terms of order {n}.")
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


class Probe:
    """``bench._probe`` polling /healthz from its own process; ``phase(out)`` collects the
    latencies of one phase into ``out``."""

    def __init__(self, url: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench._probe", f"{url}/healthz"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    @contextlib.asynccontextmanager
    async def phase(self, out: list[float]) -> AsyncIterator[None]:
        assert self._proc.stdin and self._proc.stdout
        self._proc.stdin.write("start\n")
        self._proc.stdin.flush()
        try:
            yield
        finally:
            self._proc.stdin.write("stop\n")
            self._proc.stdin.flush()
            out.extend(json.loads(await asyncio.to_thread(self._proc.stdout.readline)))

    def close(self) -> None:
        assert self._proc.stdin
        self._proc.stdin.close()
        self._proc.wait(10)


async def token(url: str, email: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=url, timeout=120)
    r = await http.post("/api/v1/auth/token", json={"email": email, "password": "pw"})
    r.raise_for_status()
    http.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return http


async def main(rounds: int) -> None:
    print(machine_note("start"))
    with temp_root("dealdesk-burst-") as root, temporal_server(root) as server:
        url_db = f"sqlite:///{root / 'dealdesk.db'}"
        upgrade(url_db)
        settings = bench_settings(root, url_db, server.address)
        engine = make_engine(url_db)
        sessions = make_session_factory(engine)
        with sessions.begin() as s:
            rep = make_user(s, "Rae Rep", "rep")
            managers = [make_user(s, f"Mo Manager {i}", "sales_manager") for i in (1, 2)]
            finance = make_user(s, "Fay Finance", "finance")
            account = make_account(s).id
            load_policy(s, POLICY)
            emails = [rep.email, *(m.email for m in managers), finance.email]
        documents = [("contract.pdf", contract_pdf(3), "application/pdf") if n % 2 == 0 else
                     ("order.docx", word_contract(n), "application/vnd.openxmlformats-"
                      "officedocument.wordprocessingml.document") for n in range(20)]
        client = await connect(settings)
        async with deployed(settings) as url:
            probe = Probe(url)
            control_port = free_port()
            control_server = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "bench._control", str(control_port)])
            await asyncio.sleep(0.5)
            control = Probe(f"http://127.0.0.1:{control_port}")
            control_idle: list[float] = []
            control_busy: list[float] = []
            rep_http, *mgr_http = [await token(url, e) for e in emails[:3]]
            anonymous = httpx.AsyncClient(base_url=url, timeout=120)
            idle: list[float] = []
            busy: list[float] = []
            created_rates, approval_rates, start_rates, sent_after = [], [], [], []
            for rnd in range(rounds):
                made = await asyncio.gather(*(rep_http.post("/api/v1/quotes", json=quote_body(
                    account, title=f"Burst {rnd}-{n}")) for n in range(PER_ROUND)))
                ids = [r.json()["id"] for r in made]
                await asyncio.gather(*(rep_http.post(f"/api/v1/quotes/{i}/submit")
                                       for i in ids))
                tasks: list[str] = []
                while len(tasks) < PER_ROUND:
                    await asyncio.sleep(0.5)
                    with sessions() as s:
                        tasks = list(s.scalars(select(ApprovalTask.id).where(
                            ApprovalTask.quote_id.in_(ids), ApprovalTask.state == "open")))
                async with probe.phase(idle), control.phase(control_idle):
                    await asyncio.sleep(3)

                async def timed(calls: list) -> tuple[list[httpx.Response], float]:  # type: ignore[type-arg]
                    t0 = time.perf_counter()
                    answers = await asyncio.gather(*calls)
                    return list(answers), time.perf_counter() - t0

                async with probe.phase(busy), control.phase(control_busy):
                    t_burst = time.perf_counter()
                    (envs, t_env), (_, _), (oks, t_ok) = await asyncio.gather(
                        timed([rep_http.post("/api/v1/envelopes", files={"document": d}, data={
                            "spec": json.dumps({"title": f"Burst {rnd}-{n}", "recipients": [
                                {"name": "Ann Buyer", "email": f"ann{rnd}x{n}@burst.test"}]})})
                            for n, d in enumerate(documents)]),
                        timed([anonymous.post("/api/v1/auth/token", json={
                            "email": emails[3], "password": "wrong"}) for _ in range(20)]),
                        timed([mgr_http[n % 2].post(f"/api/v1/tasks/{t}/decision",
                                                    json={"decision": "approve"})
                               for n, t in enumerate(tasks)]))
                    await asyncio.sleep(0.5)
                env_ids = [r.json()["id"] for r in envs if r.status_code == 201]
                errors = [r.status_code for r in (*envs, *oks) if r.status_code >= 500]
                print(f"round {rnd + 1}: {len(env_ids)}/20 envelopes created in {t_env:.2f} s, "
                      f"{sum(r.status_code == 200 for r in oks)}/50 approvals in {t_ok:.2f} s, "
                      f"5xx: {len(errors)}")
                created_rates.append(len(env_ids) / t_env)
                approval_rates.append(len(oks) / t_ok)
                while True:
                    with sessions() as s:
                        sent = s.scalar(select(func.count()).select_from(Envelope).where(
                            Envelope.id.in_(env_ids), Envelope.status == "sent"))
                    if sent == len(env_ids):
                        break
                    await asyncio.sleep(0.25)
                sent_after.append(time.perf_counter() - t_burst)
                t0 = time.perf_counter()
                await asyncio.gather(*(client.start_workflow(
                    "BenchNothing", id=f"bench-start-{rnd}-{n}", task_queue="bench-nothing")
                    for n in range(PER_ROUND)))
                start_rates.append(PER_ROUND / (time.perf_counter() - t0))
            for c in (rep_http, *mgr_http, anonymous):
                await c.aclose()
            probe.close()
            control.close()
            control_server.kill()
        engine.dispose()

    print()
    print(summary("/healthz idle", idle))
    print(summary("/healthz during the bursts", busy))
    ratio = pct(busy, 95) / pct(idle, 95)
    print(f"p95_burst/p95_idle = {ratio:.2f}  (target <= {TARGET_RATIO:.0f}x: "
          f"{verdict(ratio <= TARGET_RATIO)})")
    print(summary("control idle (does nothing else)", control_idle))
    print(summary("control during the bursts", control_busy))
    floor = pct(control_busy, 95) / pct(control_idle, 95)
    print(f"machine floor: the control's p95_burst/p95_idle = {floor:.2f}; dealdesk's burst p95 "
          f"over the control's = {pct(busy, 95) / pct(control_busy, 95):.2f}")
    best = max(created_rates)
    raw = max(start_rates)
    print(f"envelopes created per second: {best:.1f} (best round; all: "
          f"{', '.join(f'{r:.1f}' for r in created_rates)})")
    print(f"raw workflow starts per second, same server: {raw:.1f} (best round; all: "
          f"{', '.join(f'{r:.1f}' for r in start_rates)})  -> created/raw = {best / raw:.2f}")
    print(f"approvals per second during the burst: {max(approval_rates):.1f} (best round)")
    print(f"every envelope sent (Word converted) after: "
          f"{', '.join(f'{t:.1f} s' for t in sent_after)}")
    print(machine_note("end"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args().rounds))
    finish()
