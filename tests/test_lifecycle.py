"""One deal end to end on the real stack (Temporal dev server, worker, app, LibreOffice,
pyHanko and poppler): RFP → quote → approval → proposal → contract → two-party signing →
invoice → subscription → renewal reminder → renewal quote (through the chain: it carries a
discount) → signed renewal → second term. Each step is a child of the deal's DealWorkflow;
documents are real and every signature validates."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import zipfile
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from dealdesk.worker import open_pki
from store.blobs import BlobStore
from store.commerce import Invoice
from store.deals import Deal, deal_workflow_id
from store.history_archive import ArchivedHistory
from store.models import AuditEvent, Envelope, OutboxMessage, Quote
from store.proposals import Proposal
from store.subscriptions import Contract, Subscription, SubscriptionTerm, renewal_workflow_id
from tests.envelope_support import act, recipients
from tests.pdfs import pdfsig_report, pyhanko_verdicts
from tests.support import eventually, parent_of, replays
from tests.test_assembly import needs_libreoffice
from tests.test_rfp_files import ALASKA_FORMS
from tests.web_support import People, quote_body, seed_people, token_client
from web.services import histories
from workflows.deal import DealWorkflow
from workflows.deal_messages import DealState
from workflows.renewal_messages import RenewalState

pytestmark = [needs_libreoffice, pytest.mark.timeout(600)]

CUSTOMER = {"name": "Hank Scorpio", "email": "hank@globex.test", "title": "CEO"}


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


def _stage(sessions: sessionmaker[Session], deal_id: int) -> str:
    with sessions() as s:
        return s.get_one(Deal, deal_id).stage


async def _stage_is(sessions: sessionmaker[Session], deal_id: int, stage: str) -> None:
    await eventually(lambda: _stage(sessions, deal_id) == stage or None, timeout=60)


async def _approve_chain(rep: httpx.AsyncClient, approvers: list[httpx.AsyncClient],
                         qid: int) -> None:
    """Submit the quote and have each approver decide their open task, in the chain's order."""
    r = await rep.post(f"/api/v1/quotes/{qid}/submit")
    assert r.status_code == 202, r.text
    await _decide(rep, approvers, qid)


async def _decide(rep: httpx.AsyncClient, approvers: list[httpx.AsyncClient],
                  qid: int) -> None:
    """Each approver approves their open task of the quote's chain, in order."""
    for approver in approvers:
        async def task(approver: httpx.AsyncClient = approver) -> str | None:
            inbox = (await approver.get("/api/v1/inbox", params={"limit": 500})).json()
            return next((t["id"] for t in inbox if t["quote_id"] == qid), None)

        task_id = await eventually(task, timeout=60)
        r = await approver.post(f"/api/v1/tasks/{task_id}/decision",
                                json={"decision": "approve"})
        assert r.status_code == 200, r.text

    async def approved() -> bool | None:
        return (await rep.get(f"/api/v1/quotes/{qid}")).json()["status"] == "approved" or None

    await eventually(approved, timeout=60)


async def _sign_contract(rep: httpx.AsyncClient, sessions: sessionmaker[Session],
                         client: Client, deal_id: int, ours: dict[str, str], key: str) -> int:
    """Send the deal's contract and have both parties sign it; the envelope's id."""
    r = await rep.post(f"/api/v1/deals/{deal_id}/contract",
                       json={"signers": [CUSTOMER, ours]}, headers={"Idempotency-Key": key},
                       timeout=120)
    assert r.status_code == 201, r.text
    eid = int(r.json()["envelope_id"])
    await _sign(sessions, client, eid, ours)
    return eid


async def _sign(sessions: sessionmaker[Session], client: Client, eid: int,
                ours: dict[str, str]) -> None:
    """The customer signs, then we do, each when invited."""
    await eventually(lambda: recipients(sessions, eid)[CUSTOMER["email"]] == "sent", timeout=120)
    await act(sessions, client, eid, CUSTOMER["email"])
    await eventually(lambda: recipients(sessions, eid)[ours["email"]] == "sent", timeout=60)
    await act(sessions, client, eid, ours["email"])


def _completed(sessions: sessionmaker[Session], eid: int) -> Envelope | None:
    with sessions() as s:
        env = s.get_one(Envelope, eid)
        return env if env.status == "completed" and env.final_sha256 else None


async def _signatures_validate(sessions: sessionmaker[Session], settings: Settings,
                               eid: int) -> None:
    env = await eventually(lambda: _completed(sessions, eid), timeout=120)
    assert env.final_sha256 is not None
    sealed = BlobStore(settings.blob_dir).get(env.final_sha256)
    pki = open_pki(settings)
    verdicts = await asyncio.to_thread(pyhanko_verdicts, sealed, pki)
    assert sum(not v.timestamp for v in verdicts) == 2, verdicts
    assert all(v.intact and v.valid and v.trusted for v in verdicts), verdicts
    poppler = await asyncio.to_thread(pdfsig_report, sealed, pki)
    signed = {f: v for f, v in poppler.items() if f.startswith("sig-")}
    assert len(signed) == 2 and all(v == ("Signature is Valid.", "Certificate is Trusted.")
                                    for v in signed.values()), poppler


def _count(s: Session, model: Any, *where: Any) -> int:
    return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def test_a_deal_from_its_rfp_to_its_second_term(
        live_url: str, client: Client, settings: Settings, people: People,
        sessions: sessionmaker[Session]) -> None:
    prefix = settings.workflow_prefix
    rep, mgr, fin, legal = [await token_client(live_url, u) for u in (
        people.rep, people.manager, people.finance, people.legal)]
    ours = {"name": people.rep.name, "email": people.rep.email, "title": "Account Executive"}

    # Intake: the deal.
    r = await rep.post("/api/v1/deals", json={"account_id": people.account_id,
                                              "name": "Globex platform"})
    assert r.status_code == 201, r.text
    deal_id = r.json()["id"]
    dealflow = deal_workflow_id(prefix, deal_id)

    # The RFP: the customer's Word file, its open questions to an expert (the deal's first
    # child), answered, approved, and written back into the customer's own file.
    r = await rep.post("/api/v1/rfps", files={"file": ("globex-rfp.docx", ALASKA_FORMS)},
                       data={"deal_id": str(deal_id)})
    assert r.status_code == 201, r.text
    rfp_id = r.json()["id"]
    assert _stage(sessions, deal_id) == "rfp"
    due = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    r = await rep.post(f"/api/v1/rfps/{rfp_id}/assign", json={
        "assignee_id": people.legal.id, "due_at": due.isoformat()})
    assert r.status_code == 200, r.text
    assigned = r.json()
    assert await parent_of(client, assigned["workflow_id"]) == dealflow
    for n, qid in enumerate(assigned["question_ids"]):
        r = await legal.put(f"/api/v1/rfps/{rfp_id}/questions/{qid}/answer",
                            json={"text": f"Globex answer {n}"})
        assert r.status_code == 200, r.text
    await _stage_is(sessions, deal_id, "quote")  # every question answered: the step ends
    assert (await rep.post(f"/api/v1/rfps/{rfp_id}/approve")).status_code == 200
    answered = await rep.get(f"/api/v1/rfps/{rfp_id}/document")
    assert answered.status_code == 200
    with zipfile.ZipFile(io.BytesIO(answered.content)) as z:
        assert "Globex answer 0" in z.read("word/document.xml").decode()

    # The quote, 20 % off: the sales manager, then finance (children of the deal).
    r = await rep.post("/api/v1/quotes", json=quote_body(
        people.account_id, title="Globex platform", deal_id=deal_id))
    assert r.status_code == 201, r.text
    qid = r.json()["id"]
    await _approve_chain(rep, [mgr, fin], qid)
    assert await parent_of(client, f"{prefix}quote-{qid}-v1") == dealflow
    await _stage_is(sessions, deal_id, "proposal")

    # The proposal (no review step under this policy): its final PDF.
    r = await rep.post("/api/v1/proposals", json={"title": "Globex proposal",
                                                  "account_id": people.account_id,
                                                  "quote_id": qid})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert (await rep.post(f"/api/v1/proposals/{pid}/submit")).status_code == 202

    def proposal_done() -> str | None:
        with sessions() as s:
            p = s.get_one(Proposal, pid)
            return p.status if p.status == "approved" else None

    await eventually(proposal_done, timeout=180)
    await _stage_is(sessions, deal_id, "contract")

    # The contract: the Common Paper order form, signed by the customer, then by us.
    eid = await _sign_contract(rep, sessions, client, deal_id, ours, "contract-1")
    await _signatures_validate(sessions, settings, eid)
    handle = client.get_workflow_handle(dealflow)
    assert await asyncio.wait_for(handle.result(), 60) == "won"
    state = await handle.query("state", result_type=DealState)
    assert [(c.step, c.status) for c in state.children] == [
        ("rfp", "answered"), ("approval", "approved"), ("proposal", "approved"),
        ("signing", "completed")]
    await _history_replays(live_url, people, deal_id, eid)

    # Won: the invoice, the contract with the sealed PDF, the subscription and its renewal.
    def subscription() -> Subscription | None:
        with sessions() as s:
            return s.scalar(select(Subscription).where(Subscription.quote_id == qid))

    sub = await eventually(subscription, timeout=60)
    await eventually(lambda: _invoices(sessions, qid) == 1 or None, timeout=60)
    with sessions() as s:
        contract = s.scalar(select(Contract).where(Contract.quote_id == qid))
        assert contract is not None and contract.sealed_sha256 == _completed(
            sessions, eid).final_sha256  # type: ignore[union-attr]
        assert s.get_one(Deal, deal_id).stage == "won"
    renewal = client.get_workflow_handle(renewal_workflow_id(prefix, sub.id))

    # A year on, in a minute: the term moved to end tomorrow. The latest missed reminder
    # goes at once, and the renewal quote is made, uplifted, in a renewal deal.
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    r = await rep.patch(f"/api/v1/subscriptions/{sub.id}/term", json={"term_end": tomorrow,
                                                                      "notice_days": 0})
    assert r.status_code == 200, r.text

    async def renewal_quote() -> int | None:
        state = await renewal.query("state", result_type=RenewalState)
        return state.renewal_quote_id if state.reminders_sent else None

    renewal_qid = await eventually(renewal_quote, timeout=60)
    with sessions() as s:
        assert _count(s, AuditEvent, AuditEvent.entity == f"subscription:{sub.id}",
                      AuditEvent.action == "subscription.reminded") == 1
        assert _count(s, OutboxMessage,
                      OutboxMessage.message_key.like(f"renewal-{sub.id}-1-%")) == 1
        renewal_quote_row = s.get_one(Quote, renewal_qid)
        renewal_deal = renewal_quote_row.deal_id
        assert renewal_deal is not None and renewal_deal != deal_id
        assert renewal_quote_row.status in ("draft", "pending_approval")  # 20 % off
        assert renewal_quote_row.net_amount == 8_240_000  # 3 % uplift

    # The renewal quote moves on by itself: submitted through its chain (a child of the
    # renewal deal's process); once approved, its contract goes to the customer's signer of
    # the contract it renews, then to its owner.
    await _decide(rep, [mgr, fin], renewal_qid)
    assert await parent_of(client, f"{prefix}quote-{renewal_qid}-v1") == deal_workflow_id(
        prefix, renewal_deal)

    def renewal_envelope() -> int | None:
        with sessions() as s:
            return s.scalar(select(Envelope.id).where(Envelope.quote_id == renewal_qid))

    renewal_eid = await eventually(renewal_envelope, timeout=120)
    await _sign(sessions, client, renewal_eid, ours)
    await _signatures_validate(sessions, settings, renewal_eid)
    await eventually(lambda: _quote_status(sessions, renewal_qid) == "won" or None, timeout=60)

    # Signed early: the renewal takes effect now, and the process runs the second term.
    r = await rep.post(f"/api/v1/subscriptions/{sub.id}/renew-early")
    assert r.status_code == 200, r.text

    async def second_term() -> RenewalState | None:
        state = await renewal.query("state", result_type=RenewalState)
        return state if state.term_number == 2 else None

    await eventually(second_term, timeout=60)
    with sessions() as s:
        terms = list(s.scalars(select(SubscriptionTerm).where(
            SubscriptionTerm.subscription_id == sub.id).order_by(SubscriptionTerm.number)))
        assert [(t.number, t.outcome) for t in terms] == [(1, "renewed"), (2, None)]
        assert terms[1].arr == 8_240_000
        assert _count(s, Subscription) == 1  # the renewal renewed it, made no other
        # Once each: the first deal's invoice, its contract, the renewal's contract.
        assert _invoices(sessions, qid) == 1
        assert _count(s, Contract) == 2
    # The renewal deal's own process: its chain and its envelope, won.
    renewal_flow = client.get_workflow_handle(deal_workflow_id(prefix, renewal_deal))
    assert await asyncio.wait_for(renewal_flow.result(), 60) == "won"
    state = await renewal_flow.query("state", result_type=DealState)
    assert [(c.step, c.status) for c in state.children] == [
        ("approval", "approved"), ("signing", "completed")]
    # The whole deal's history replays on today's code (saved with DEALDESK_SAVE_HISTORY).
    await replays(client, dealflow, [DealWorkflow])
    await _archived_under_their_deals(client, settings, sessions, deal_id, renewal_deal)
    for c in (rep, mgr, fin, legal):
        await c.aclose()


async def _history_replays(live_url: str, people: People, deal_id: int, eid: int) -> None:
    """The auditor's timeline has every approval, document and signature in order, with the
    processes' own events beside them; just before the last signature its signer is pending."""
    auditor = await token_client(live_url, people.auditor)
    r = await auditor.get(f"/api/v1/deals/{deal_id}/history")
    assert r.status_code == 200, r.text
    timeline = r.json()["timeline"]
    acts = [e["action"] for e in timeline if e["source"] == "audit"]
    wanted = ["quote.submitted", "task.approved", "task.approved", "chain.approved",
              "proposal.submitted", "proposal.finalized", "envelope.created",
              "envelope.signed", "envelope.signed", "envelope.sealed", "quote.won"]
    at = iter(acts)
    assert all(w in at for w in wanted), acts  # each found after the one before
    submitted = next(e for e in timeline if e["action"] == "quote.submitted")
    decisions = [e for e in timeline if e["action"] == "task.approved"
                 and e["subject"] == submitted["subject"]]
    assert decisions and all(e["data"]["quote_hash"] == submitted["data"]["hash"]
                             for e in decisions)
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)
    kinds = {e["what"].split()[0] for e in timeline if e["source"] == "workflow"}
    assert {"DealWorkflow", "ApprovalChainWorkflow", "EnvelopeWorkflow"} <= kinds
    last = max(n for n, e in enumerate(timeline) if e["action"] == "envelope.signed")
    signer = timeline[last]["data"]["actor_email"]

    async def signers(n: int) -> dict[str, str]:
        r = await auditor.get(f"/api/v1/deals/{deal_id}/history", params={"at": n})
        assert r.status_code == 200, r.text
        return {s["email"]: s["status"]
                for s in r.json()["state"]["envelopes"][str(eid)]["signers"]}

    before, after = await signers(last - 1), await signers(last)
    assert before[signer] == "pending" and after[signer] == "signed"
    assert list(before.values()).count("signed") == 1
    page = await auditor.get(f"/deals/{deal_id}/history", params={"at": last - 1})
    assert page.status_code == 200 and "pending" in page.text
    await auditor.aclose()


async def _archived_under_their_deals(client: Client, settings: Settings,
                                      sessions: sessionmaker[Session], deal_id: int,
                                      renewal_deal: int) -> None:
    """Every closed run is archived, each under its deal: the process, its children, the
    renewal's first term (continued as new), the renewal deal's own runs. Each deal's runs
    (archived, or still running in Temporal) replay on today's code."""
    while (await histories.archive_closed(client, sessions, task_queue=settings.task_queue,
                                          prefix=settings.workflow_prefix, batch_size=5)).left:
        pass
    closed = {e.run_id async for e in client.list_workflows(
        f"TaskQueue = '{settings.task_queue}' AND ExecutionStatus != 'Running'")}
    with sessions() as s:
        rows = s.scalars(select(ArchivedHistory)).all()
    assert {r.run_id for r in rows} == closed
    assert {r.deal_id for r in rows} == {deal_id, renewal_deal}
    first = {(r.workflow_type, r.status) for r in rows if r.deal_id == deal_id}
    assert {("DealWorkflow", "completed"), ("RenewalWorkflow", "continued_as_new"),
            ("EnvelopeWorkflow", "completed")} <= first, first
    assert {"ApprovalChainWorkflow", "ProposalWorkflow"} <= {t for t, _ in first}, first
    for deal in (deal_id, renewal_deal):
        replayed = await histories.replay_deal(client, sessions, settings.workflow_prefix, deal)
        assert [o.error for _, o in replayed if not o.ok] == []
        sources = {run.source for run, _ in replayed}
        # The first deal's subscription runs its second term in Temporal.
        assert sources == {"archive", "temporal"} if deal == deal_id else "archive" in sources


def _invoices(sessions: sessionmaker[Session], quote_id: int) -> int:
    with sessions() as s:
        return _count(s, Invoice, Invoice.quote_id == quote_id)


def _quote_status(sessions: sessionmaker[Session], quote_id: int) -> str:
    with sessions() as s:
        return s.get_one(Quote, quote_id).status
