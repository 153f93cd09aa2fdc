"""A deal's whole lifecycle on real ``dealdesk worker`` / ``dealdesk web`` processes, with
faults in the middle: its quote's approval chain (a child of ``dealflow-{deal}``) decided,
its contract sent (an envelope child) and signed by both parties, the deal won, billed and
handed to its renewal process.

- The worker is SIGKILLed while the chain waits on a decision and again while the envelope
  waits on its second signer, dies at ``record_outcome:after-commit`` (the deal won, the
  billing not started) and at ``start:after-start`` (the renewal started or the deal's process
  told, not marked), and is restarted each time.
- The Temporal dev server (a dedicated one, on its own SQLite file) is killed while a chain
  waits on a decision and an envelope on a signer, and restarted on the same file and port;
  the web answers 503 meanwhile and the client retries.

Both then check that everything happened exactly once: mails, tasks, signatures, the contract,
the subscription, invoices, audit rows, and every workflow run."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus

from dealdesk.devserver import TemporalDevServer, free_port, free_ports
from dealdesk.runtime import connect
from dealdesk.settings import Settings
from dealdesk.worker import open_pki
from store.blobs import BlobStore
from store.commerce import Invoice
from store.deals import Deal, deal_workflow_id
from store.models import (
    ApprovalTask,
    AuditEvent,
    Envelope,
    EnvelopeEvent,
    EnvelopeRecipient,
    OutboxMessage,
    Quote,
    User,
)
from store.starts import WorkflowStart
from store.subscriptions import Contract, Subscription
from tests.pdfs import pyhanko_verdicts
from tests.processes import Processes
from tests.support import eventually
from tests.test_assembly import needs_libreoffice
from tests.test_mail import Inbox
from tests.web_support import People, browser_session, quote_body, seed_people, token_client
from web.services import quotes
from workflows.billing import billing_workflow_id

pytestmark = needs_libreoffice

LINK = re.compile(r"/sign/([A-Za-z0-9_-]{20,})")
CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')
CUSTOMER = {"name": "Hank Scorpio", "email": "hank@initech.test", "title": "CEO"}


@pytest.fixture
def mail() -> Iterator[tuple[Inbox, dict[str, str]]]:
    """A real SMTP server (aiosmtpd, in-process) and the environment that sends to it."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, {"DEALDESK_SMTP_HOST": "127.0.0.1", "DEALDESK_SMTP_PORT": str(port)}
    controller.stop()


# ------------------------------------------------------------------ driving the deal
async def _retry(call: Callable[[], Awaitable[httpx.Response]], *, ok: tuple[int, ...],
                 timeout: float = 90) -> httpx.Response:
    """``call`` until it answers one of ``ok``: a 503 (Temporal or the worker away) or a lost
    connection is retried, as a client would; anything else fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = await call()
            if r.status_code in ok:
                return r
            assert r.status_code in (502, 503, 504), (r.status_code, r.text[-800:])
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"no answer in {ok} within {timeout}s"
        await asyncio.sleep(0.5)


def _open_task(sessions: sessionmaker[Session], quote_id: int, step: str) -> str | None:
    with sessions() as s:
        return s.scalar(select(ApprovalTask.id).where(
            ApprovalTask.quote_id == quote_id, ApprovalTask.step_key == step,
            ApprovalTask.state == "open"))


def _quote_status(sessions: sessionmaker[Session], quote_id: int) -> str:
    with sessions() as s:
        return s.get_one(Quote, quote_id).status


def _recipient_status(sessions: sessionmaker[Session], envelope_id: int, email: str) -> str:
    with sessions() as s:
        return s.scalar(select(EnvelopeRecipient.status).where(
            EnvelopeRecipient.envelope_id == envelope_id,
            EnvelopeRecipient.email == email)) or ""


def _link(sessions: sessionmaker[Session], email: str) -> str | None:
    with sessions() as s:
        bodies = s.scalars(select(OutboxMessage.body).where(OutboxMessage.to_addr == email))
        found = [m.group(1) for b in bodies if (m := LINK.search(b))]
    return found[0] if found else None


async def _decide(url: str, people: People, task_id: str, approver_id: int) -> None:
    approver = people.manager if approver_id == people.manager.id else people.finance
    async with _api(url, approver) as http:
        r = await _retry(lambda: http.post(f"/api/v1/tasks/{task_id}/decision",
                                           json={"decision": "approve"}, timeout=60),
                         ok=(200, 409))
        # A 409 only when a retry finds its own earlier (lost) answer applied.
        assert r.status_code == 200 or "already approved" in r.text, r.text


async def _approve(url: str, sessions: sessionmaker[Session], people: People,
                   quote_id: int) -> None:
    """Both steps of the chain (manager, then finance), through the API."""
    for step, user in (("manager", people.manager), ("finance", people.finance)):
        task = await eventually(lambda st=step: _open_task(sessions, quote_id, st),
                                timeout=60, interval=0.2)
        await _decide(url, people, task, user.id)
    await eventually(lambda: _quote_status(sessions, quote_id) == "approved", timeout=60,
                     interval=0.2)


async def _new_deal(url: str, people: People) -> tuple[int, int]:
    async with _api(url, people.rep) as rep:
        r = await rep.post("/api/v1/quotes", json=quote_body(
            people.account_id, title="Fleet analytics", billing="annual"))
        assert r.status_code == 201, r.text
        return int(r.json()["deal_id"]), int(r.json()["id"])


async def _submit(url: str, people: People, quote_id: int) -> None:
    async with _api(url, people.rep) as rep:
        r = await _retry(lambda: rep.post(f"/api/v1/quotes/{quote_id}/submit"), ok=(202,))
        assert r.status_code == 202


async def _send_contract(url: str, people: People, deal_id: int, quote_id: int) -> int:
    ours = {"name": people.rep.name, "email": people.rep.email, "title": "Account Executive"}
    async with _api(url, people.rep) as rep:
        r = await _retry(lambda: rep.post(
            f"/api/v1/deals/{deal_id}/contract", timeout=180,
            json={"signers": [CUSTOMER, ours], "quote_id": quote_id},
            headers={"Idempotency-Key": f"contract-{deal_id}"}), ok=(201,), timeout=240)
        return int(r.json()["envelope_id"])


async def _customer_signs(url: str, sessions: sessionmaker[Session], envelope_id: int) -> None:
    email = CUSTOMER["email"]
    await eventually(lambda: _recipient_status(sessions, envelope_id, email) == "sent",
                     timeout=120, interval=0.2)
    token = await eventually(lambda: _link(sessions, email), timeout=30)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        page = await _retry(lambda: http.get(f"/sign/{token}"), ok=(200,))
        csrf = CSRF.search(page.text)
        assert csrf, page.text[-500:]
        form = {"csrf_token": csrf.group(1), "typed_name": CUSTOMER["name"], "agree": "yes"}
        # 200 (the signed page) or, for a retry whose lost first try went through, 409.
        await _retry(lambda: http.post(f"/sign/{token}/sign", data=form), ok=(200, 409))
    await eventually(lambda: _recipient_status(sessions, envelope_id, email) == "signed",
                     timeout=60, interval=0.2)


async def _rep_signs(url: str, sessions: sessionmaker[Session], people: People,
                     envelope_id: int) -> None:
    email = people.rep.email
    await eventually(lambda: _recipient_status(sessions, envelope_id, email) == "sent",
                     timeout=120, interval=0.2)
    browser, csrf = await browser_session(url, people.rep)
    async with contextlib.aclosing(browser):
        await _retry(lambda: browser.post(f"/envelopes/{envelope_id}/sign", data={
            "csrf_token": csrf, "typed_name": people.rep.name, "agree": "yes"}),
            ok=(303, 409))


@contextlib.asynccontextmanager
async def _api(url: str, user: User) -> AsyncIterator[httpx.AsyncClient]:
    http = await token_client(url, user)
    try:
        yield http
    finally:
        await http.aclose()


def _unsent(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(OutboxMessage.message_key).where(
            OutboxMessage.sent_at.is_(None))))


async def _kill(sessions: sessionmaker[Session], proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker once the mail it queued is delivered: a kill between the SMTP
    server's accepting a mail and its ``sent_at`` commit re-sends it (at least once, with the
    same Message-ID: no transport can do better), which is not what these tests look at."""
    await eventually(lambda: not _unsent(sessions), timeout=30, interval=0.1)
    proc.kill()
    proc.wait(10)


# ------------------------------------------------------------------ exactly once
async def _runs(client: Client, workflow_id: str) -> int:
    return len([w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")])


def _dupes(items: list[object]) -> list[object]:
    return [k for k, n in Counter(items).items() if n > 1]


async def _everything_once(sessions: sessionmaker[Session], client: Client,
                           settings: Settings, people: People, deal_id: int, quote_id: int,
                           envelope_id: int, inbox: Inbox, other_quotes: tuple[int, ...] = (),
                           stages: list[str] | None = None) -> None:
    prefix = settings.workflow_prefix
    dealflow = deal_workflow_id(prefix, deal_id)
    handle = client.get_workflow_handle(dealflow)
    assert await asyncio.wait_for(handle.result(), 60) == "won"

    # Billing and renewal finish their own first steps a moment after the win.
    def invoiced() -> bool:
        with sessions() as s:
            return (s.scalar(select(func.count()).select_from(Invoice)
                             .where(Invoice.quote_id == quote_id)) or 0) >= 1
    await eventually(invoiced, timeout=60, interval=0.3)

    def all_started() -> bool:
        with sessions() as s:
            return not s.scalars(select(WorkflowStart.workflow_id).where(
                WorkflowStart.started_at.is_(None))).all()
    await eventually(all_started, timeout=60, interval=0.3)

    with sessions() as s:
        deal = s.get_one(Deal, deal_id)
        assert deal.stage == "won"
        assert s.get_one(Quote, quote_id).status == "won"
        env = s.get_one(Envelope, envelope_id)
        assert env.status == "completed" and env.final_sha256
        # One envelope, one contract, one subscription.
        assert s.scalar(select(func.count()).select_from(Envelope)
                        .where(Envelope.deal_id == deal_id)) == 1
        [contract] = s.scalars(select(Contract).where(Contract.quote_id == quote_id)).all()
        assert (contract.envelope_id, contract.sealed_sha256) == (envelope_id,
                                                                   env.final_sha256)
        [sub] = s.scalars(select(Subscription).where(
            Subscription.contract_id == contract.id)).all()
        assert s.scalar(select(func.count()).select_from(Contract)) == 1
        assert s.scalar(select(func.count()).select_from(Subscription)) == 1
        # One invoice per installment (12 months billed annually: one).
        installments = [(i.quote_id, i.installment) for i in s.scalars(select(Invoice))]
        assert installments == [(quote_id, 1)], installments
        # One task per approver and step of each chain, each decided once.
        tasks = s.scalars(select(ApprovalTask).where(
            ApprovalTask.quote_id.in_((quote_id, *other_quotes)))).unique().all()
        seats = [(t.quote_id, t.quote_version, t.step_key, t.group_index, t.seat)
                 for t in tasks]
        assert not _dupes(seats), seats
        mine = sorted((t.step_key, t.state) for t in tasks if t.quote_id == quote_id)
        assert mine == [("finance", "approved"), ("manager", "approved")], mine
        # Each signer signed once (the events, and the sealed PDF below).
        signed = s.scalars(select(EnvelopeEvent.recipient_id).where(
            EnvelopeEvent.envelope_id == envelope_id, EnvelopeEvent.kind == "signed")).all()
        assert len(signed) == 2 and not _dupes(list(signed)), signed
        # Mail: one per logical message and recipient.
        mails = s.execute(select(OutboxMessage.message_key, OutboxMessage.to_addr,
                                 OutboxMessage.subject)).all()
        audit = s.execute(select(AuditEvent.action, AuditEvent.entity,
                                 AuditEvent.data)).all()
        sub_id = sub.id
    keys = [m.message_key for m in mails]
    # Every mail reached the SMTP server, once (none left queued by a crash).
    def all_sent() -> bool:
        assert not (unsent := _unsent(sessions)), unsent
        return True
    await eventually(all_sent, timeout=30, interval=0.3)
    received = [(str(m["To"]), str(m["Subject"])) for m in (
        message_from_bytes(raw, policy=policy.default) for raw in inbox.received)]
    assert not _dupes(received), sorted(received)
    assert sorted(received) == sorted((m.to_addr, m.subject) for m in mails)
    assert not _dupes([(m.to_addr, m.subject) for m in mails]), sorted(mails)
    signers = {CUSTOMER["email"], people.rep.email}
    invites = [m.to_addr for m in mails
               if m.message_key.startswith(f"envelope-{envelope_id}:")
               and m.subject.startswith("Please sign")]
    assert sorted(invites) == sorted(signers), sorted(mails)
    outcome = [m.to_addr for m in mails
               if m.message_key.startswith(f"envelope-{envelope_id}:outcome:")]
    assert signers <= set(outcome) and not _dupes(list(outcome)), outcome
    assert len(keys) == len(set(keys))

    # Audit: one row per fact (the stage moves, the signatures, the win).
    facts = [(a.action, a.entity, str(sorted((a.data or {}).items()))) for a in audit
             if a.action not in ("auth.login", "auth.token")]
    assert not _dupes(facts), _dupes(facts)
    wins = [a for a in audit if a.action == "quote.won" and a.entity == f"quote:{quote_id}"]
    assert len(wins) == 1, wins
    moves = [(a.data or {}).get("to") for a in audit if a.action == "deal.stage_changed"
             and a.entity == f"deal:{deal_id}"]
    assert all(a != b for a, b in itertools.pairwise(moves)), moves
    if stages is not None:
        assert moves == stages, moves

    # The sealed PDF: exactly two approval signatures, intact and trusted.
    final = BlobStore(settings.blob_dir).get(env.final_sha256)
    verdicts = await asyncio.to_thread(pyhanko_verdicts, final, open_pki(settings))
    assert sum(not v.timestamp for v in verdicts) == 2, verdicts
    assert all(v.intact and v.valid and v.trusted for v in verdicts), verdicts

    # One run of every workflow: the deal's process, its chain(s), its envelope, the billing,
    # the renewal.
    chain = quotes.workflow_id(prefix, quote_id, 1)
    d = await client.get_workflow_handle(chain).describe()
    assert d.parent_id == dealflow
    envelope_wf = f"{prefix}envelope-{envelope_id}"
    assert (await client.get_workflow_handle(envelope_wf).describe()).parent_id == dealflow
    for wid in (dealflow, chain, envelope_wf, billing_workflow_id(prefix, quote_id),
                f"{prefix}renewal-{sub_id}",
                *(quotes.workflow_id(prefix, q, 1) for q in other_quotes)):
        assert await _runs(client, wid) == 1, wid
    assert (await client.get_workflow_handle(f"{prefix}renewal-{sub_id}").describe()
            ).status == WorkflowExecutionStatus.RUNNING
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


# ------------------------------------------------------------------ the tests
@pytest.mark.timeout(300)
async def test_a_deal_survives_worker_crashes_at_every_stage(
        sessions: sessionmaker[Session], settings: Settings, client: Client,
        processes: Processes, mail: tuple[Inbox, dict[str, str]]) -> None:
    inbox, smtp = mail
    people = seed_people(sessions)
    first = processes.worker(**smtp)
    _, url = processes.web(**smtp)
    deal_id, quote_id = await _new_deal(url, people)
    await _submit(url, people, quote_id)

    # 1. Killed while the chain waits on the manager: the decision waits for a new worker.
    task = await eventually(lambda: _open_task(sessions, quote_id, "manager"),
                            timeout=60, interval=0.2)
    await _kill(sessions, first)
    deciding = asyncio.create_task(_decide(url, people, task, people.manager.id))
    await asyncio.sleep(1)  # the Update is in flight with no worker to take it
    second = processes.worker(**smtp)
    await deciding
    await _approve(url, sessions, people, quote_id)  # the finance step (manager done)

    # 2. The contract, the customer signs; killed while the envelope waits on our signer.
    envelope_id = await _send_contract(url, people, deal_id, quote_id)
    await _customer_signs(url, sessions, envelope_id)
    await eventually(lambda: _recipient_status(sessions, envelope_id, people.rep.email)
                     == "sent", timeout=60, interval=0.2)
    await _kill(sessions, second)

    # 3. Our signer signs; the next worker dies right after the outcome committed the win.
    third = processes.worker(DEALDESK_CRASH_AT="record_outcome:after-commit", **smtp)
    await _rep_signs(url, sessions, people, envelope_id)
    assert await asyncio.to_thread(third.wait, 90) == 137
    assert _quote_status(sessions, quote_id) == "won"

    # 4. The next one retries the outcome, then dies after starting the renewal (or telling
    # the deal's process it was won) before marking that start.
    fourth = processes.worker(DEALDESK_CRASH_AT="start:after-start", **smtp)
    assert await asyncio.to_thread(fourth.wait, 90) == 137

    # 5. A healthy worker finishes it all, once.
    processes.worker(**smtp)
    try:
        await _everything_once(sessions, client, settings, people, deal_id, quote_id,
                               envelope_id, inbox, stages=["approval", "proposal", "signing"])
    except BaseException:
        print(processes.logs())
        raise


@pytest.fixture
async def own_temporal(tmp_path: Path) -> AsyncIterator[TemporalDevServer]:
    """A Temporal dev server of this test alone (it is killed and restarted mid-test)."""
    ports = free_ports(3)
    server = TemporalDevServer(db_file=tmp_path / "temporal" / "own.db", port=ports[0],
                               http_port=ports[1], metrics_port=ports[2],
                               log_file=tmp_path / "temporal" / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(300)
async def test_a_deal_resumes_after_temporal_restarts_mid_flight(
        sessions: sessionmaker[Session], settings: Settings, own_temporal: TemporalDevServer,
        tmp_path: Path, mail: tuple[Inbox, dict[str, str]]) -> None:
    settings = settings.model_copy(update={"temporal_address": own_temporal.address})
    client = await connect(settings)
    processes = Processes(settings, tmp_path)
    try:
        await _temporal_restart(sessions, settings, client, own_temporal, processes, mail)
    except BaseException:
        print(processes.logs())
        raise
    finally:
        processes.stop_all()


async def _temporal_restart(sessions: sessionmaker[Session], settings: Settings,
                            client: Client, server: TemporalDevServer,
                            processes: Processes, mail: tuple[Inbox, dict[str, str]]) -> None:
    inbox, smtp = mail
    people = seed_people(sessions)
    processes.worker(**smtp)
    _, url = processes.web(**smtp)
    deal_id, quote_id = await _new_deal(url, people)
    await _submit(url, people, quote_id)
    await _approve(url, sessions, people, quote_id)
    # A second version of the deal's quote in its chain, and the contract for the first: a
    # chain waiting on a decision and an envelope waiting on its signer.
    async with _api(url, people.rep) as rep:
        r = await rep.post("/api/v1/quotes", json=quote_body(
            people.account_id, title="Fleet analytics, more seats", deal_id=deal_id))
        assert r.status_code == 201, r.text
        other = int(r.json()["id"])
    await _submit(url, people, other)
    envelope_id = await _send_contract(url, people, deal_id, quote_id)
    task = await eventually(lambda: _open_task(sessions, other, "manager"),
                            timeout=60, interval=0.2)
    await eventually(lambda: _recipient_status(sessions, envelope_id, CUSTOMER["email"])
                     == "sent", timeout=120, interval=0.2)
    await eventually(lambda: _link(sessions, CUSTOMER["email"]), timeout=30)

    # Temporal dies with all of that in flight; clicks meanwhile get a 503 and are retried.
    server.kill()
    deciding = asyncio.create_task(_decide(url, people, task, people.manager.id))
    signing = asyncio.create_task(_customer_signs(url, sessions, envelope_id))
    await asyncio.sleep(3)
    assert not deciding.done() and not signing.done()
    server.start()
    await asyncio.wait_for(asyncio.gather(deciding, signing), 120)

    # The rest goes through: the other chain's finance step, our signature, the win.
    finance = await eventually(lambda: _open_task(sessions, other, "finance"), timeout=60,
                               interval=0.2)
    await _decide(url, people, finance, people.finance.id)
    await eventually(lambda: _quote_status(sessions, other) == "approved", timeout=60,
                     interval=0.2)
    await _rep_signs(url, sessions, people, envelope_id)
    await _everything_once(sessions, client, settings, people, deal_id, quote_id, envelope_id,
                           inbox, other_quotes=(other,))
