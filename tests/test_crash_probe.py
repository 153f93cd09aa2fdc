"""The crash probe: ``dealdesk up`` (its supervisor, Temporal dev server, worker and web) runs
30 quotes through approval (10 of them won and invoiced) and 15 two-signer envelopes to
completion while its worker — or, in the second run, its web process — is SIGKILLed every few
seconds. Every lifecycle completes, no record goes backwards, nothing is duplicated, no
request answers 5xx, and the stack stays up (the supervisor restarts what was killed)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.devserver import free_ports
from store import audit
from store.commerce import Invoice
from store.db import make_engine, make_session_factory
from store.liveness import WorkerHeartbeat
from store.models import (
    ApprovalRequest,
    Envelope,
    EnvelopeEvent,
    EnvelopeRecipient,
    OutboxMessage,
    Quote,
)
from tests.pdfs import contract_pdf
from tests.support import eventually
from tests.web_support import POLICY, seed_people

LINK = re.compile(r"/sign/([A-Za-z0-9_-]{20,})")
CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')
QUOTE_ORDER = ["draft", "pending_approval", "approved", "won"]
ENVELOPE_ORDER = ["preparing", "sent", "completed"]


@dataclass
class Stack:
    proc: subprocess.Popen[str]
    url: str
    database_url: str
    output: list[str]
    killed: set[int] = field(default_factory=set)
    kill_times: list[float] = field(default_factory=list)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    var = tmp_path / "var"
    # Five different ports: one handed to two servers once made the web's requests reach
    # Temporal's HTTP API.
    port, grpc, http, metrics, ui = free_ports(5)
    env = {**os.environ, "DEALDESK_ENVIRONMENT": "test", "DEALDESK_VAR_DIR": str(var),
           "DEALDESK_TEMPORAL_ADDRESS": f"127.0.0.1:{grpc}",
           "DEALDESK_TEMPORAL_HTTP_PORT": str(http),
           "DEALDESK_TEMPORAL_METRICS_PORT": str(metrics),
           "DEALDESK_TEMPORAL_UI_PORT": str(ui), "DEALDESK_WEB_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "dealdesk", "up"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "Press Ctrl-C" in line or not line:
            break
    assert "Press Ctrl-C" in "".join(seen), "".join(seen)
    # Keep reading what the supervisor prints, or its pipe fills and its prints block.
    drain = threading.Thread(target=lambda: seen.extend(proc.stdout or ()), daemon=True)
    drain.start()
    yield Stack(proc, f"http://127.0.0.1:{port}", f"sqlite:///{var / 'dealdesk.db'}", seen)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _child(parent: int, command: str) -> int | None:
    """The pid of ``python -m dealdesk COMMAND`` started by ``parent``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and cmdline[-2:-1] == [command.encode()]:
            return int(stat.parent.name)
    return None


@dataclass
class Driver:
    """Drives the lifecycles over HTTP like a patient client: a request that dies with a
    killed process is retried (creates carry an Idempotency-Key); a 5xx is recorded."""

    url: str
    server_errors: list[str] = field(default_factory=list)
    clicks: list[tuple[float, float, str]] = field(default_factory=list)
    """(when, how long, what) of every decision and signature: how long people waited."""

    async def call(self, http: httpx.AsyncClient, method: str, path: str,
                   **kwargs: Any) -> httpx.Response:
        for _ in range(120):
            start = time.monotonic()
            try:
                r = await http.request(method, self.url + path, **kwargs)
            except httpx.TransportError:
                await asyncio.sleep(0.5)
                continue
            if path.endswith(("/decision", "/sign")):
                self.clicks.append((start, time.monotonic() - start, path))
            if r.status_code >= 500:
                self.server_errors.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
            return r
        raise AssertionError(f"{method} {path} never got an answer")

    async def token(self, email: str) -> httpx.AsyncClient:
        http = httpx.AsyncClient(timeout=60)
        r = await self.call(http, "POST", "/api/v1/auth/token",
                            json={"email": email, "password": "pw"})
        assert r.status_code == 200, r.text
        http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        return http


def _statuses(sessions: sessionmaker[Session]) -> dict[str, str]:
    with sessions() as s:
        quotes = {f"quote:{i}": st for i, st in s.execute(select(Quote.id, Quote.status))}
        envelopes = {f"envelope:{i}": st for i, st in s.execute(
            select(Envelope.id, Envelope.status))}
    return {**quotes, **envelopes}


def _forward(seen: list[str], order: list[str]) -> bool:
    ranks = [order.index(st) for st in seen if st in order]
    return ranks == sorted(ranks)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("victim", ["worker", "web"])
async def test_lifecycles_complete_while_a_process_is_killed_every_few_seconds(
        victim: str, stack: Stack) -> None:
    engine = make_engine(stack.database_url)
    sessions = make_session_factory(engine)
    people = seed_people(sessions, POLICY)
    d = Driver(stack.url)
    rep = await d.token(people.rep.email)
    approvers = [await d.token(people.manager.email), await d.token(people.finance.email)]
    history: dict[str, list[str]] = {}
    stop = asyncio.Event()
    kills = 0

    async def watch() -> None:  # every record's statuses, in the order they were seen
        while not stop.is_set():
            for key, st in (await asyncio.to_thread(_statuses, sessions)).items():
                seen = history.setdefault(key, [])
                if not seen or seen[-1] != st:
                    seen.append(st)
            await asyncio.sleep(0.2)

    async def kill() -> None:
        """Each new process of the victim works for 4-8 s once it is ready (a web process
        2-5 s: the lifecycles go faster without the worker's restarts, and must still see three
        kills), then dies (killed sooner, a process still importing never gets to do
        anything)."""
        nonlocal kills
        rng = random.Random(7)
        low, high = (4, 8) if victim == "worker" else (2, 5)
        while not stop.is_set():
            pid = await eventually(lambda: _ready(stack, victim, sessions), timeout=180,
                                   interval=0.2)
            if await _stopped(stop, rng.uniform(low, high)):
                return
            os.kill(pid, signal.SIGKILL)
            stack.killed.add(pid)
            stack.kill_times.append(time.monotonic())
            kills += 1

    async def quote(n: int) -> None:
        r = await d.call(rep, "POST", "/api/v1/quotes", headers={"Idempotency-Key": f"q{n}"},
                         json={"account_id": people.account_id, "title": f"Probe {n}",
                               "currency": "USD", "list_amount": 1_000_000,
                               "net_amount": 850_000, "cost_amount": 300_000,
                               "term_months": 12, "billing": "one_time"})
        assert r.status_code == 201, r.text
        qid = r.json()["id"]
        r = await d.call(rep, "POST", f"/api/v1/quotes/{qid}/submit")
        assert r.status_code in (202, 409), r.text
        async def approved() -> bool:
            r = await d.call(rep, "GET", f"/api/v1/quotes/{qid}")
            return bool(r.json()["status"] == "approved")
        await eventually(approved, timeout=600, interval=1)
        if n < 10:
            r = await d.call(rep, "POST", f"/api/v1/quotes/{qid}/won")
            assert r.status_code == 202, r.text

    async def approve(approver: httpx.AsyncClient) -> None:
        """An approver working through their inbox as tasks arrive."""
        while not stop.is_set():
            inbox = await d.call(approver, "GET", "/api/v1/inbox")
            for task in inbox.json() if inbox.status_code == 200 else []:
                r = await d.call(approver, "POST", f"/api/v1/tasks/{task['id']}/decision",
                                 json={"decision": "approve"})
                assert r.status_code in (200, 409), r.text
            await asyncio.sleep(0.5)

    async def envelope(n: int) -> None:
        spec = json.dumps({"title": f"Probe MSA {n}", "recipients": [
            {"name": f"Ann {n}", "email": f"ann{n}@probe.test", "routing_order": 1},
            {"name": f"Ben {n}", "email": f"ben{n}@probe.test", "routing_order": 2}]})
        r = await d.call(rep, "POST", "/api/v1/envelopes", data={"spec": spec},
                         headers={"Idempotency-Key": f"e{n}"},
                         files={"document": ("msa.pdf", contract_pdf(2), "application/pdf")})
        assert r.status_code == 201, r.text
        for who in (f"ann{n}@probe.test", f"ben{n}@probe.test"):
            await sign(who)

    async def sign(email: str) -> None:
        async with httpx.AsyncClient(timeout=60) as browser:
            while not await asyncio.to_thread(_signed, sessions, email):
                # (a signature whose answer died with the web process is in the store)
                token = await eventually(lambda: _link(sessions, email), timeout=120)
                page = await d.call(browser, "GET", f"/sign/{token}")
                if "signed" in page.text.lower() and "thank you" in page.text.lower():
                    return
                csrf = CSRF.search(page.text)
                if page.status_code != 200 or csrf is None:
                    await asyncio.sleep(0.5)  # a reminder may have replaced the link
                    continue
                r = await d.call(browser, "POST", f"/sign/{token}/sign", data={
                    "csrf_token": csrf.group(1), "typed_name": email, "agree": "yes"})
                if r.status_code == 200 and "thank you" in r.text.lower():
                    return
                await asyncio.sleep(0.5)

    watching = asyncio.create_task(watch())
    killing = asyncio.create_task(kill())
    approving = [asyncio.create_task(approve(a)) for a in approvers]
    try:
        await asyncio.wait_for(asyncio.gather(*(quote(n) for n in range(30)),
                                              *(envelope(n) for n in range(15))), 480)
        done = await eventually(lambda: _all_settled(sessions), timeout=180, interval=1)
    except (AssertionError, TimeoutError) as e:
        raise AssertionError(f"{e!r}\n{_waits(d, stack)}\n{_diagnosis(stack, sessions, kills)}") \
            from None
    finally:
        stop.set()
        await asyncio.gather(watching, killing, *approving)
    print(f"\n[{victim} killed {kills} times] {_waits(d, stack)}")
    assert done and kills >= 3, kills
    assert stack.proc.poll() is None, "".join(stack.output)  # the stack stayed up
    assert not d.server_errors, d.server_errors
    for key, seen in history.items():
        order = QUOTE_ORDER if key.startswith("quote:") else ENVELOPE_ORDER
        assert _forward(seen, order), (key, seen)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Quote)) == 30
        assert s.scalar(select(func.count()).select_from(ApprovalRequest)) == 30
        assert s.scalar(select(func.count()).select_from(Envelope)) == 15
        assert s.scalar(select(func.count()).select_from(Invoice)) == 10
        numbers = sorted(int(n.rsplit("-", 1)[1]) for n in s.scalars(select(Invoice.number)))
        assert numbers == list(range(1, 11))
        signed = s.execute(select(EnvelopeEvent.envelope_id, func.count())
                           .where(EnvelopeEvent.kind == "signed")
                           .group_by(EnvelopeEvent.envelope_id)).all()
        assert sorted(c for _, c in signed) == [2] * 15
        assert audit.verify(s).ok
    for c in (rep, *approvers):
        await c.aclose()
    engine.dispose()


def _ready(stack: Stack, victim: str, sessions: sessionmaker[Session]) -> int | None:
    """The victim's pid once it serves: a worker that polls (its heartbeat is fresh: a warm
    spare doesn't beat until it takes over), a web process that answers."""
    if victim == "worker":
        with sessions() as s:
            ids = s.scalars(select(WorkerHeartbeat.worker_id).where(
                WorkerHeartbeat.seen_at > dt.datetime.now(dt.UTC) - dt.timedelta(seconds=4)))
            pids = {int(i.split(":")[1]) for i in ids} - stack.killed
        return min(pids) if pids else None
    pid = _child(stack.proc.pid, victim)
    if pid is None or pid in stack.killed:
        return None
    try:
        httpx.get(f"{stack.url}/static/app.css", timeout=1)
    except httpx.HTTPError:
        return None
    return pid


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _link(sessions: sessionmaker[Session], email: str) -> str | None:
    """The signing link of the newest mail that has one (a reminder replaces it)."""
    with sessions() as s:
        bodies = s.scalars(select(OutboxMessage.body).where(OutboxMessage.to_addr == email)
                           .order_by(OutboxMessage.id.desc()))
        links = (LINK.search(body or "") for body in bodies)
        return next((m.group(1) for m in links if m), None)


def _signed(sessions: sessionmaker[Session], email: str) -> bool:
    with sessions() as s:
        return s.scalar(select(EnvelopeRecipient.status)
                        .where(EnvelopeRecipient.email == email)) == "signed"


def _all_settled(sessions: sessionmaker[Session]) -> bool:
    with sessions() as s:
        won = s.scalar(select(func.count()).select_from(Quote).where(Quote.status == "won"))
        approved = s.scalar(select(func.count()).select_from(Quote).where(
            Quote.status == "approved"))
        completed = s.scalar(select(func.count()).select_from(Envelope).where(
            Envelope.status == "completed"))
        invoiced = s.scalar(select(func.count()).select_from(Invoice).where(
            Invoice.pdf_sha256.is_not(None)))
    return won == 10 and approved == 20 and completed == 15 and invoiced == 10


def _diagnosis(stack: Stack, sessions: sessionmaker[Session], kills: int) -> str:
    var = Path(stack.database_url.removeprefix("sqlite:///")).parent
    with sessions() as s:
        quotes = s.execute(select(Quote.status, func.count()).group_by(Quote.status)).all()
        envelopes = s.execute(select(Envelope.status, func.count())
                              .group_by(Envelope.status)).all()
    logs = "".join(f"--- {name}\n{(var / name).read_text(errors='replace')[-3000:]}\n"
                   for name in ("worker.log", "web.log") if (var / name).exists())
    return (f"kills={kills} quotes={quotes} envelopes={envelopes}\n"
            f"supervisor:\n{''.join(stack.output)[-3000:]}\n{logs}")


def _waits(d: Driver, stack: Stack) -> str:
    """How long clicks took; the slowest ones with the kills around them."""
    waits = sorted(w for _, w, _ in d.clicks)
    if not waits:
        return "no clicks"
    p95 = waits[min(len(waits) - 1, int(len(waits) * 0.95))]
    slowest = sorted(d.clicks, key=lambda c: -c[1])[:5]
    around = "; ".join(
        f"{path.rsplit('/', 1)[1]} {took:.1f} s, kills at "
        f"{[round(k - start, 1) for k in stack.kill_times if start - 30 < k < start + took]}"
        for start, took, path in slowest)
    return (f"clicks: {len(waits)}, median {waits[len(waits) // 2]:.2f} s, p95 {p95:.2f} s, "
            f"max {waits[-1]:.2f} s; slowest: {around}")
