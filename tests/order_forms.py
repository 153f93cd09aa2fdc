"""An order form on its way to a won deal, through the API: an approved quote (its document
made, as the quote-document tests make it) sent as a two-signer envelope, then signed in turn
until sealed. The evidence tests and ``bench.audit`` start from it."""

from __future__ import annotations

import hashlib
import json

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from store.commerce import QuoteDocumentRow
from store.models import Envelope, Quote
from tests.envelope_support import act, recipients
from tests.pdfs import contract_pdf
from tests.support import eventually
from tests.web_support import People, quote_body

ORDER_PDF = contract_pdf(2)
CUSTOMER = "ann@globex.test"


async def send_order_form(rep: httpx.AsyncClient, people: People,
                          sessions: sessionmaker[Session], title: str) -> tuple[int, int]:
    """(deal, envelope): the envelope's customer is invited, the rep signs second."""
    r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id, title=title))
    assert r.status_code == 201, r.text
    q = r.json()
    with sessions.begin() as s:  # approved, its document made (other tests' subjects)
        s.get_one(Quote, q["id"]).status = "approved"
        s.add(QuoteDocumentRow(quote_id=q["id"], version=1, docx_sha256="0" * 64,
                               pdf_sha256=hashlib.sha256(ORDER_PDF).hexdigest(), pages=2,
                               created_by_id=people.rep.id))
    spec = {"title": "Order form", "quote_id": q["id"], "recipients": [
        {"name": "Ann Buyer", "email": CUSTOMER, "routing_order": 1},
        {"name": people.rep.name, "email": people.rep.email, "routing_order": 2}]}
    r = await rep.post("/api/v1/envelopes", data={"spec": json.dumps(spec)},
                       files={"document": ("order.pdf", ORDER_PDF, "application/pdf")})
    assert r.status_code == 201, r.text
    eid = int(r.json()["id"])
    await eventually(lambda: recipients(sessions, eid)[CUSTOMER] == "sent" or None,
                     timeout=120)
    return int(q["deal_id"]), eid


async def sign_in_turn(sessions: sessionmaker[Session], client: Client, eid: int,
                       people: People) -> None:
    """The customer signs, then the rep, each when invited; returns once it is sealed."""
    for email in (CUSTOMER, people.rep.email):
        await eventually(lambda email=email: recipients(sessions, eid)[email] == "sent" or None,
                         timeout=120)
        await act(sessions, client, eid, email)

    def sealed() -> bool | None:
        with sessions() as s:
            return s.get_one(Envelope, eid).certificate_sha256 is not None or None

    await eventually(sealed, timeout=120)
