"""Won deals are invoiced by BillingWorkflow: gap-free numbers under concurrency (SQLite and
PostgreSQL), annual billing in advance, tax lines by region, the PDF and the CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store.blobs import BlobStore
from store.commerce import Invoice, QuoteDocumentRow
from store.models import Quote, User
from tests.cpq_support import Cast, cast
from tests.envelope_support import act, recipients
from tests.pdfs import contract_pdf
from tests.support import eventually, replays
from tests.web_support import token_client
from web.errors import Forbidden, Invalid
from web.services import envelopes as svc
from workflows.billing import BillingWorkflow, billing_workflow_id
from workflows.envelope import EnvelopeWorkflow

__all__ = ["cast"]


def approved_quotes(sessions: sessionmaker[Session], c: Cast, n: int, **over: object
                    ) -> list[int]:
    """Quotes already through their approval chain (the chain has its own tests)."""
    with sessions.begin() as s:
        quotes = [Quote(account_id=c.account, owner_id=c.rep.id, title=f"Deal {i}",
                        currency="USD", list_amount=1_000_000, net_amount=900_000 + i,
                        cost_amount=300_000, term_months=12, status="approved",
                        billing="one_time", **over) for i in range(n)]
        s.add_all(quotes)
        s.flush()
        return [q.id for q in quotes]


async def _win_concurrently(live_url: str, sessions: sessionmaker[Session], c: Cast) -> None:
    ids = approved_quotes(sessions, c, 100)
    rep = await token_client(live_url, c.rep)
    answers = await asyncio.gather(*(rep.post(f"/api/v1/quotes/{i}/won") for i in ids))
    assert [a.status_code for a in answers] == [202] * 100, answers[0].text

    def issued() -> list[Invoice] | None:
        with sessions() as s:
            rows = list(s.scalars(select(Invoice).where(Invoice.pdf_sha256.is_not(None))))
        return rows if len(rows) == 100 else None
    invoices = await eventually(issued, timeout=120, interval=0.5)
    numbers = sorted(int(i.number.rsplit("-", 1)[1]) for i in invoices)
    assert numbers == list(range(1, 101))
    assert sorted(i.quote_id for i in invoices) == sorted(ids)
    again = await rep.post(f"/api/v1/quotes/{ids[0]}/won")  # a retry issues nothing new
    assert again.status_code == 202
    await asyncio.sleep(1)
    with sessions() as s:
        assert len(s.scalars(select(Invoice)).all()) == 100


async def test_100_deals_won_at_once_get_100_consecutive_numbers(
        live_url: str, sessions: sessionmaker[Session], cast: Cast) -> None:
    await _win_concurrently(live_url, sessions, cast)


@pytest.mark.postgres
async def test_100_deals_won_at_once_on_postgres(
        live_url: str, sessions: sessionmaker[Session], cast: Cast) -> None:
    await _win_concurrently(live_url, sessions, cast)


async def test_annual_billing_taxes_pdf_and_csv(live_url: str, sessions: sessionmaker[Session],
                                                cast: Cast, tmp_path: object) -> None:
    [qid] = approved_quotes(sessions, cast, 1)
    with sessions.begin() as s:
        q = s.get(Quote, qid)
        assert q is not None
        q.account_id, q.billing, q.term_months = cast.globex, "annual", 30
        q.net_amount = 3_000_000
    rep = await token_client(live_url, cast.rep)
    assert (await rep.post(f"/api/v1/quotes/{qid}/won")).status_code == 202

    async def first() -> dict[str, object] | None:
        rows = (await rep.get("/api/v1/invoices")).json()
        return rows[0] if rows and rows[0]["pdf_url"] else None
    inv = await eventually(first, timeout=30, interval=0.3)
    # 30 months, annual in advance: 12 + 12 + 6 months; the first year is 12/30 of the total.
    assert inv["subtotal"] == 1_200_000
    assert inv["tax"] == 252_000 and inv["total"] == 1_452_000  # EU: VAT 21%
    pdf = await rep.get(str(inv["pdf_url"]))
    assert pdf.headers["content-type"] == "application/pdf"
    text = await pdf_text(pdf.content)
    assert str(inv["number"]) in text and "Globex" in text and "VAT 21%" in text
    assert "Year 3 of 3" in text and "scheduled" in text
    rows = list(csv.reader(io.StringIO((await rep.get("/api/v1/invoices.csv")).text)))
    assert rows[0][:3] == ["number", "issued", "due"]
    assert rows[1][0] == inv["number"] and rows[1][-2] == "14520.00"
    url = f"/api/v1/invoices/{inv['id']}/status"
    assert (await rep.post(url, json={"status": "paid"})).status_code == 403
    admin = await token_client(live_url, cast.admin)
    r = await admin.post(url, json={"status": "void"})
    assert r.status_code == 422 and "say why" in r.json()["detail"]
    r = await admin.post(url, json={"status": "paid"})
    assert r.status_code == 200 and r.json()["status"] == "paid"
    assert (await admin.post(url, json={"status": "void", "note": "x"})).status_code == 409
    other = await token_client(live_url, cast.manager)  # not the owner, not finance
    assert (await other.get("/api/v1/invoices")).json() == []
    assert (await other.get(str(inv["pdf_url"]))).status_code == 404


async def pdf_text(pdf: bytes) -> str:
    done = await asyncio.to_thread(subprocess.run, ["pdftotext", "-layout", "-", "-"],
                                   input=pdf, capture_output=True, check=True)
    return str(done.stdout.decode())


async def test_a_signed_quote_envelope_wins_the_deal_and_invoices_it(
        live_url: str, sessions: sessionmaker[Session], cast: Cast, client: Client,
        settings: Settings) -> None:
    [qid] = approved_quotes(sessions, cast, 1)
    quote_pdf = contract_pdf(2)
    blobs = BlobStore(settings.blob_dir)
    with sessions.begin() as s:  # its generated document (generation has its own tests)
        s.add(QuoteDocumentRow(quote_id=qid, version=1, docx_sha256=blobs.put(b"docx"),
                               pdf_sha256=blobs.put(quote_pdf), pages=2,
                               created_by_id=cast.rep.id))

    def deal(quote_id: int | None, document: bytes = quote_pdf) -> svc.EnvelopeIn:
        return svc.EnvelopeIn(
            title="Deal 0 — quote", document_name="quote.pdf", document=document,
            message="Please sign.", quote_id=quote_id,
            recipients=[svc.RecipientIn("Ann Buyer", "ann@initech.test", routing_order=1)])

    with sessions() as s:
        rep, manager = s.get(User, cast.rep.id), s.get(User, cast.manager.id)
        assert rep is not None and manager is not None
        # Only the quote's owner, with the quote's own generated document, wins a deal.
        with pytest.raises(Forbidden, match="isn't yours"):
            await svc.create_envelope(s, client, settings, blobs, manager, deal(qid))
        with pytest.raises(Invalid, match="not the generated document"):
            await svc.create_envelope(s, client, settings, blobs, rep,
                                      deal(qid, contract_pdf(3)))
        env = await svc.create_envelope(s, client, settings, blobs, rep, deal(qid))
    await eventually(lambda: recipients(sessions, env.id)["ann@initech.test"] == "sent")
    with sessions() as s:  # still approved: the deal is won by the signature, not before
        assert (s.get(Quote, qid) or Quote()).status == "approved"
    await act(sessions, client, env.id, "ann@initech.test")

    def invoiced() -> Invoice | None:
        with sessions() as s:
            return s.scalar(select(Invoice).where(Invoice.quote_id == qid,
                                                  Invoice.pdf_sha256.is_not(None)))
    invoice = await eventually(invoiced, timeout=60, interval=0.3)
    assert invoice.total == 900_000  # one-time billing, no tax in the account's region
    with sessions() as s:
        quote = s.get(Quote, qid)
        assert quote is not None and quote.status == "won" and quote.won_at is not None
    # Both runs replay on today's code (the envelope's took the bill-won-deals branch).
    await replays(client, env.workflow_id, [EnvelopeWorkflow, BillingWorkflow])
    await replays(client, billing_workflow_id(settings.workflow_prefix, qid),
                  [BillingWorkflow])
    # Marking it won by hand afterwards changes nothing: one deal, one billing, one invoice.
    rep_api = await token_client(live_url, cast.rep)
    assert (await rep_api.post(f"/api/v1/quotes/{qid}/won")).status_code == 202
    await asyncio.sleep(1)
    with sessions() as s:
        assert len(s.scalars(select(Invoice).where(Invoice.quote_id == qid)).all()) == 1
