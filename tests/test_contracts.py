"""Contracts from the shipped Common Paper templates, sent as an envelope on the real stack:
the rendered PDF carries the deal's and quote's facts, both anchors and the CC BY
attribution; both parties sign through EnvelopeWorkflow, which wins the quote and writes the
``contracts`` row with the sealed PDF's hash; bad input is a 4xx that names the field; parallel
sends with one idempotency key make one envelope."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from dealdesk.worker import open_pki
from documents.contract import TEMPLATES, money
from documents.intake import find_anchors
from store.blobs import BlobStore
from store.deals import Deal
from store.models import Envelope, Quote
from store.subscriptions import Contract, Subscription
from tests.cpq_support import Cast, cast
from tests.envelope_support import act, envelope, recipients
from tests.pdfs import pyhanko_verdicts
from tests.support import eventually
from tests.test_assembly import bbox_words, needs_libreoffice
from tests.web_support import token_client
from web.services import configurator

__all__ = ["cast"]
pytestmark = needs_libreoffice

CUSTOMER = {"name": "Hank Scorpio", "email": "hank@initech.test",
            "title": "Chief Executive Officer"}


def deal_with_quote(sessions: sessionmaker[Session], c: Cast, status: str = "approved",
                    ) -> tuple[int, int]:
    """A deal with one quote (already through its chain: the chain has its own tests)."""
    with sessions.begin() as s:
        deal = Deal(account_id=c.account, owner_id=c.rep.id, name="Initech analytics",
                    amount=1_234_500, currency="USD", stage="proposal",
                    forecast_category="best_case")
        s.add(deal)
        s.flush()
        quote = Quote(account_id=c.account, owner_id=c.rep.id, title="Analytics platform",
                      currency="USD", list_amount=1_500_000, net_amount=1_234_500,
                      cost_amount=300_000, term_months=24, status=status, billing="annual",
                      deal_id=deal.id, nonstandard_terms=["Net 45 payment terms"])
        s.add(quote)
        s.flush()
        return deal.id, quote.id


async def configured_quote(live_url: str, sessions: sessionmaker[Session], c: Cast
                           ) -> tuple[int, int, str, list[str]]:
    """A quote made through the API (it makes its deal) with a configured bundle, then
    approved (the chain has its own tests): its deal, id, net total as the contract writes it,
    and its lines' names."""
    rep = await token_client(live_url, c.rep)
    r = await rep.post("/api/v1/quotes", json={"account_id": c.account, "term_months": 24,
                                               "title": "Analytics hub", "currency": "USD"})
    qid = r.json()["id"]
    assert (await rep.post(f"/api/v1/quotes/{qid}/items",
                           json={"selection": {"sku": "ANL-HUB"}})).status_code == 201
    with sessions.begin() as s:
        quote = s.get(Quote, qid)
        assert quote is not None and quote.deal_id is not None
        quote.status = "approved"
        quote.nonstandard_terms = ["Net 45 payment terms"]
        names = [it.priced["lines"][0]["name"] for it in configurator.items_of(s, quote)]
        return quote.deal_id, qid, money(quote.net_amount, "USD").replace("\xa0", " "), names


def ours(c: Cast) -> dict[str, str]:
    return {"name": c.rep.name, "email": c.rep.email, "title": "Account Executive"}


def pdf_text(pdf: bytes) -> str:
    out = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True,
                         timeout=60).stdout.decode()
    return re.sub(r"\s+", " ", out)


@pytest.mark.timeout(300)
async def test_a_contract_is_signed_by_both_parties_and_wins_the_quote(
        live_url: str, sessions: sessionmaker[Session], cast: Cast, client: Client,
        settings: Settings) -> None:
    deal_id, qid, total, names = await configured_quote(live_url, sessions, cast)
    assert names
    rep = await token_client(live_url, cast.rep)
    r = await rep.post(f"/api/v1/deals/{deal_id}/contract",
                       json={"signers": [CUSTOMER, ours(cast)]},
                       headers={"Idempotency-Key": "contract-1"})
    assert r.status_code == 201, r.text
    eid = r.json()["envelope_id"]
    with sessions() as s:
        env = s.get(Envelope, eid)
        assert env is not None
        assert (env.deal_id, env.quote_id) == (deal_id, qid)
        assert [(x.email, x.routing_order, x.anchor) for x in env.recipients] == [
            (CUSTOMER["email"], 1, "customer"), (cast.rep.email, 2, "provider")]
        assert env.recipients[1].user_id == cast.rep.id  # ours signs from the inbox

    # The document: the deal's and quote's facts, both anchors, the licence's attribution.
    blobs = BlobStore(settings.blob_dir)
    original = blobs.get(envelope(sessions, eid).original_sha256)
    text = pdf_text(original)
    for expected in ("Cloud Service Agreement", "Initech", settings.org_name,
                     f"{total} per Subscription Period (quote Q-{qid} v1)", "24 months",
                     *(f"{name} × 1: USD" for name in names), "Net 45 payment terms",
                     "Hank Scorpio", "Chief Executive Officer", CUSTOMER["email"],
                     cast.rep.name, "Account Executive", "[[sign:customer]]",
                     "[[sign:provider]]", TEMPLATES["order_form"].attribution,
                     "free to use under CC BY 4.0"):
        assert expected in text, expected
    assert "{{" not in text and "Drafting note" not in text

    await eventually(lambda: recipients(sessions, eid)[CUSTOMER["email"]] == "sent",
                     timeout=120)
    with sessions() as s:  # nothing is won before the signatures
        assert (s.get(Quote, qid) or Quote()).status == "approved"
    await act(sessions, client, eid, CUSTOMER["email"])
    await eventually(lambda: recipients(sessions, eid)[cast.rep.email] == "sent", timeout=30)
    await act(sessions, client, eid, cast.rep.email)
    done = await eventually(lambda: (e := envelope(sessions, eid)).status == "completed" and e,
                            timeout=60)
    assert done.final_sha256

    def contract_row() -> Contract | None:
        with sessions() as s:
            return s.scalar(select(Contract).where(Contract.quote_id == qid))
    row = await eventually(contract_row, timeout=30)
    assert (row.sealed_sha256, row.envelope_id, row.deal_id) == (done.final_sha256, eid,
                                                                  deal_id)
    assert row.term_months == 24 and row.template == "order_form"
    assert {"role": "provider", "name": settings.org_name} in row.parties
    with sessions() as s:
        quote = s.get(Quote, qid)
        assert quote is not None and quote.status == "won"
        assert s.scalar(select(Subscription).where(Subscription.contract_id == row.id))

    # The sealed PDF validates: two approval signatures, intact, valid, trusted.
    final = blobs.get(done.final_sha256)
    verdicts = await asyncio.to_thread(pyhanko_verdicts, final, open_pki(settings))
    assert sum(not v.timestamp for v in verdicts) == 2
    assert all(v.intact and v.valid and v.trusted for v in verdicts), verdicts

    # Each stamp sits just below its party's anchor, on blank space.
    anchors = {a.label: a for a in find_anchors(original)}
    reader = PdfReader(io.BytesIO(final))
    for label, anchor in anchors.items():
        page = reader.pages[anchor.page_index]
        height = float(page.mediabox.height)
        stamps = [a.get_object() for a in page.get("/Annots", [])
                  if a.get_object().get("/FT") == "/Sig" and a.get_object().get("/V")]
        x1, y1, x2, y2 = (float(v) for v in next(
            s["/Rect"] for s in stamps if abs(float(s["/Rect"][0]) - anchor.x0) < 2
            and float(s["/Rect"][3]) <= anchor.y0))
        for word, (wx0, wy0, wx1, wy1) in bbox_words(original, anchor.page_index):
            covered = wx0 < x2 and wx1 > x1 and height - wy1 < y2 and height - wy0 > y1
            assert not covered, (label, word)


async def test_bad_requests_are_refused_with_the_field_to_fix(
        live_url: str, sessions: sessionmaker[Session], cast: Cast) -> None:
    deal_id, qid = deal_with_quote(sessions, cast)
    draft_deal, draft_quote = deal_with_quote(sessions, cast, status="draft")
    rep = await token_client(live_url, cast.rep)
    manager = await token_client(live_url, cast.manager)
    good = [CUSTOMER, ours(cast)]

    async def send(deal: int, **body: object) -> tuple[int, dict[str, object]]:
        r = await rep.post(f"/api/v1/deals/{deal}/contract", json={"signers": good, **body})
        return r.status_code, r.json()

    assert (await send(999_999))[0] == 404
    code, err = await send(deal_id, template="msa")
    assert (code, err["field"]) == (422, "template") and "order_form" in str(err["detail"])
    code, err = await send(deal_id, signers=[CUSTOMER])
    assert (code, err["field"]) == (422, "signers")
    code, err = await send(deal_id, signers=[{**CUSTOMER, "email": ""}, ours(cast)])
    assert (code, err["field"]) == (422, "signers.0.email") and "email" in str(err["detail"])
    code, err = await send(deal_id, signers=[CUSTOMER, {**ours(cast), "email": "nope"}])
    assert (code, err["field"]) == (422, "signers.1.email")
    code, err = await send(draft_deal)
    assert (code, err["field"]) == (409, "quote_id") and "no approved quote" in str(
        err["detail"])
    code, err = await send(deal_id, quote_id=draft_quote)
    assert (code, err["field"]) == (422, "quote_id")
    r = await manager.post(f"/api/v1/deals/{deal_id}/contract", json={"signers": good})
    assert r.status_code == 403 and "isn't yours" in r.json()["detail"], r.text
    assert (await rep.post(f"/api/v1/deals/{deal_id}/lost",
                           json={"reason": "went with a competitor"})).status_code == 200
    code, err = await send(deal_id)
    assert code == 409 and "lost" in str(err["detail"])
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Envelope)) == 0
        assert (s.get(Quote, qid) or Quote()).status == "approved"


@pytest.mark.timeout(240)
async def test_parallel_sends_with_one_key_make_one_envelope(
        live_url: str, sessions: sessionmaker[Session], cast: Cast, settings: Settings) -> None:
    deal_id, _ = deal_with_quote(sessions, cast, status="draft")  # an NDA needs no quote
    rep = await token_client(live_url, cast.rep)
    body = {"template": "mutual_nda", "signers": [CUSTOMER, ours(cast)]}
    answers = await asyncio.gather(*(
        rep.post(f"/api/v1/deals/{deal_id}/contract", json=body,
                 headers={"Idempotency-Key": "nda-1"}, timeout=120) for _ in range(5)))
    assert [a.status_code for a in answers] == [201] * 5, answers[0].text
    assert len({a.json()["envelope_id"] for a in answers}) == 1
    r = await rep.post(f"/api/v1/deals/{deal_id}/contract", headers={"Idempotency-Key": "nda-1"},
                       json={**body, "signers": [{**CUSTOMER, "title": "CTO"}, ours(cast)]})
    assert r.status_code == 422 and r.json()["field"] == "Idempotency-Key", r.text
    with sessions() as s:
        [env] = s.scalars(select(Envelope).where(Envelope.deal_id == deal_id)).all()
        assert env.quote_id is None  # signing an NDA wins nothing
        original = BlobStore(settings.blob_dir).get(env.original_sha256)
    text = pdf_text(original)
    for expected in ("Mutual Non-Disclosure Agreement", "Initech", settings.org_name,
                     "Hank Scorpio", "[[sign:customer]]", "[[sign:provider]]",
                     TEMPLATES["mutual_nda"].attribution):
        assert expected in text, expected


async def test_the_deal_page_sends_a_contract(
        live_url: str, sessions: sessionmaker[Session], cast: Cast) -> None:
    from tests.web_support import browser_session
    deal_id, _ = deal_with_quote(sessions, cast)
    browser, csrf = await browser_session(live_url, cast.rep)
    page = await browser.get(f"/deals/{deal_id}")
    assert page.status_code == 200 and "Send contract" in page.text
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page.text)
    assert key is not None
    form = {"csrf_token": csrf, "idempotency_key": key.group(1), "template": "order_form",
            "customer_name": CUSTOMER["name"], "customer_email": "",
            "our_name": cast.rep.name, "our_email": cast.rep.email}
    r = await browser.post(f"/deals/{deal_id}/contract", data=form)
    assert r.status_code == 422 and "email address" in r.text
    r = await browser.post(f"/deals/{deal_id}/contract",
                           data={**form, "customer_email": CUSTOMER["email"]})
    assert r.status_code == 303 and r.headers["location"].startswith("/envelopes/"), r.text
