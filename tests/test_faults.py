"""Fault injection on the one write path: the web or the worker process is killed between the
store write and the workflow start (and between the start and its bookkeeping), with
``DEALDESK_CRASH_AT`` (dealdesk/faults.py). After a restart nothing is stuck, no workflow fails
for a missing row, and nothing is duplicated: one chain, one envelope and its one invitation,
one billing and its one invoice."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store import starts
from store.blobs import BlobStore
from store.commerce import Invoice, QuoteDocumentRow
from store.models import ApprovalRequest, Envelope, OutboxMessage, Quote
from tests.pdfs import contract_pdf
from tests.processes import Processes
from tests.support import eventually
from tests.web_support import People, browser_session, quote_body, seed_people, token_client
from workflows.billing import billing_workflow_id


async def _crashes(http: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> None:
    """The request dies with the process: no answer at all."""
    with pytest.raises(httpx.TransportError):
        await http.request(method, path, **kwargs)  # type: ignore[arg-type]


def _count(sessions: sessionmaker[Session], model: type, *where: object) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def _runs(client: Client, workflow_id: str) -> int:
    return len([w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")])


def _pending(sessions: sessionmaker[Session], workflow_id: str) -> bool:
    with sessions() as s:
        return starts.is_pending(s, workflow_id)


def _status(sessions: sessionmaker[Session], quote_id: int) -> str:
    with sessions() as s:
        return s.scalar(select(Quote.status).where(Quote.id == quote_id)) or ""


async def _draft(url: str, people: People) -> tuple[httpx.AsyncClient, int]:
    rep = await token_client(url, people.rep)
    r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id))
    assert r.status_code == 201, r.text
    return rep, int(r.json()["id"])


@pytest.mark.parametrize("point", ["submit:after-commit", "start:after-start"])
async def test_a_submission_survives_the_web_dying_before_or_after_the_start(
        point: str, sessions: sessionmaker[Session], settings: Settings, client: Client,
        processes: Processes) -> None:
    people = seed_people(sessions)
    processes.worker()
    doomed, url = processes.web(DEALDESK_CRASH_AT=point)
    rep, quote_id = await _draft(url, people)
    await _crashes(rep, "POST", f"/api/v1/quotes/{quote_id}/submit")
    assert doomed.wait(10) == 137
    assert _status(sessions, quote_id) == "pending_approval"  # committed with its start
    wid = f"{settings.workflow_prefix}quote-{quote_id}-v1"
    # The worker's reconciler starts it (or finds it started, and records that).
    await eventually(lambda: _count(sessions, ApprovalRequest,
                                    ApprovalRequest.workflow_id == wid) == 1, timeout=30)
    await eventually(lambda: not _pending(sessions, wid), timeout=30)
    assert await _runs(client, wid) == 1
    _, url = processes.web()
    rep = await token_client(url, people.rep)
    again = await rep.post(f"/api/v1/quotes/{quote_id}/submit")
    assert again.status_code == 409 and "already waiting" in again.text
    assert _count(sessions, ApprovalRequest) == 1


async def test_a_recall_survives_the_web_dying_after_the_update(
        sessions: sessionmaker[Session], settings: Settings, processes: Processes) -> None:
    people = seed_people(sessions)
    processes.worker()
    _, url = processes.web()
    rep, quote_id = await _draft(url, people)
    assert (await rep.post(f"/api/v1/quotes/{quote_id}/submit")).status_code == 202
    await eventually(lambda: _count(sessions, ApprovalRequest) == 1, timeout=30)
    doomed, url = processes.web(DEALDESK_CRASH_AT="recall:after-update")
    rep = await token_client(url, people.rep)
    await _crashes(rep, "POST", f"/api/v1/quotes/{quote_id}/recall")
    assert doomed.wait(10) == 137
    await eventually(lambda: _status(sessions, quote_id) == "draft", timeout=30)
    _, url = processes.web()
    rep = await token_client(url, people.rep)
    assert (await rep.post(f"/api/v1/quotes/{quote_id}/submit")).status_code == 202
    await eventually(lambda: _count(sessions, ApprovalRequest) == 2, timeout=30)


@pytest.mark.parametrize("point", ["envelope:after-commit", "start:after-start"])
async def test_sending_a_quote_for_signature_survives_the_web_dying(
        point: str, sessions: sessionmaker[Session], settings: Settings, client: Client,
        processes: Processes) -> None:
    """Send for signature = an envelope created with its quote linked: one envelope, its
    workflow started once, one invitation; a retry with the same Idempotency-Key afterwards
    answers with that envelope."""
    people = seed_people(sessions)
    quote_pdf = contract_pdf(2)
    blobs = BlobStore(settings.blob_dir)
    with sessions.begin() as s:
        quote = Quote(account_id=people.account_id, owner_id=people.rep.id, title="Signed deal",
                      currency="USD", list_amount=1_000_000, net_amount=900_000,
                      cost_amount=300_000, term_months=12, status="approved")
        s.add(quote)
        s.flush()
        quote_id = quote.id
        s.add(QuoteDocumentRow(quote_id=quote.id, version=1, docx_sha256=blobs.put(b"docx"),
                               pdf_sha256=blobs.put(quote_pdf), pages=2,
                               created_by_id=people.rep.id))
    processes.worker()
    doomed, url = processes.web(DEALDESK_CRASH_AT=point)
    rep = await token_client(url, people.rep)
    spec = json.dumps({"title": "Signed deal", "quote_id": quote_id, "recipients": [
        {"name": "Ann Buyer", "email": "ann@buyer.test"}]})
    request = {"files": {"document": ("quote.pdf", quote_pdf, "application/pdf")},
               "data": {"spec": spec}, "headers": {"Idempotency-Key": "send-1"}}
    await _crashes(rep, "POST", "/api/v1/envelopes", **request)
    assert doomed.wait(10) == 137
    with sessions() as s:
        env = s.scalar(select(Envelope))
        assert env is not None and env.quote_id == quote_id
        wid = env.workflow_id
    await eventually(lambda: _count(sessions, OutboxMessage,
                                    OutboxMessage.to_addr == "ann@buyer.test") == 1, timeout=60)
    assert await _runs(client, wid) == 1
    _, url = processes.web()
    rep = await token_client(url, people.rep)
    retried = await rep.post("/api/v1/envelopes", **request)  # type: ignore[arg-type]
    assert retried.status_code == 201 and retried.json()["id"] == env.id
    assert _count(sessions, Envelope) == 1
    assert _count(sessions, OutboxMessage, OutboxMessage.to_addr == "ann@buyer.test") == 1


async def test_a_won_deal_is_invoiced_once_though_the_web_died_before_its_billing_started(
        sessions: sessionmaker[Session], settings: Settings, client: Client,
        processes: Processes) -> None:
    people = seed_people(sessions)
    with sessions.begin() as s:
        quote = Quote(account_id=people.account_id, owner_id=people.rep.id, title="Won deal",
                      currency="USD", list_amount=1_000_000, net_amount=900_000,
                      cost_amount=300_000, term_months=12, status="approved",
                      billing="one_time")
        s.add(quote)
        s.flush()
        quote_id = quote.id
    processes.worker()
    doomed, url = processes.web(DEALDESK_CRASH_AT="won:after-commit")
    rep = await token_client(url, people.rep)
    await _crashes(rep, "POST", f"/api/v1/quotes/{quote_id}/won")
    assert doomed.wait(10) == 137
    assert _status(sessions, quote_id) == "won"
    await eventually(lambda: _count(sessions, Invoice, Invoice.quote_id == quote_id) == 1,
                     timeout=60)
    _, url = processes.web()
    rep = await token_client(url, people.rep)
    assert (await rep.post(f"/api/v1/quotes/{quote_id}/won")).status_code == 202
    await eventually(lambda: _count(sessions, Invoice) == 1, timeout=5)
    assert await _runs(client, billing_workflow_id(settings.workflow_prefix,
                                                   quote_id)) == 1


@pytest.mark.timeout(300)
async def test_a_signed_deal_starts_its_billing_though_the_worker_died_after_winning_it(
        sessions: sessionmaker[Session], settings: Settings, client: Client,
        processes: Processes) -> None:
    """The worker dies right after the envelope's outcome committed the won deal, before the
    workflow started its billing: a fresh worker retries the outcome (idempotent) and the
    billing starts once."""
    people = seed_people(sessions)
    quote_pdf = contract_pdf(2)
    blobs = BlobStore(settings.blob_dir)
    with sessions.begin() as s:
        quote = Quote(account_id=people.account_id, owner_id=people.rep.id, title="Signed deal",
                      currency="USD", list_amount=1_000_000, net_amount=900_000,
                      cost_amount=300_000, term_months=12, status="approved",
                      billing="one_time")
        s.add(quote)
        s.flush()
        quote_id = quote.id
        s.add(QuoteDocumentRow(quote_id=quote.id, version=1, docx_sha256=blobs.put(b"docx"),
                               pdf_sha256=blobs.put(quote_pdf), pages=2,
                               created_by_id=people.rep.id))
    doomed = processes.worker(DEALDESK_CRASH_AT="record_outcome:after-commit")
    _, url = processes.web()
    rep = await token_client(url, people.rep)
    spec = json.dumps({"title": "Signed deal", "quote_id": quote_id, "recipients": [
        {"name": people.legal.name, "email": people.legal.email,
         "user_email": people.legal.email}]})
    r = await rep.post("/api/v1/envelopes", files={
        "document": ("quote.pdf", quote_pdf, "application/pdf")}, data={"spec": spec})
    assert r.status_code == 201, r.text
    envelope_id = r.json()["id"]
    legal, csrf = await browser_session(url, people.legal)
    await eventually(lambda: _invited(sessions, envelope_id), timeout=60)
    signed = await legal.post(f"/envelopes/{envelope_id}/sign", data={
        "csrf_token": csrf, "typed_name": people.legal.name, "agree": "yes"})
    assert signed.status_code == 303, signed.text
    assert doomed.wait(60) == 137  # died right after the outcome committed
    assert _status(sessions, quote_id) == "won"
    assert _count(sessions, Invoice) == 0
    processes.worker()
    await eventually(lambda: _count(sessions, Invoice, Invoice.quote_id == quote_id) == 1,
                     timeout=120, interval=0.5)
    assert await _runs(client, billing_workflow_id(settings.workflow_prefix,
                                                   quote_id)) == 1


def _invited(sessions: sessionmaker[Session], envelope_id: int) -> bool:
    with sessions() as s:
        return s.scalar(select(Envelope.status).where(Envelope.id == envelope_id)) == "sent"
