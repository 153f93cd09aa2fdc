"""A proposal assembled from the library goes out as an envelope: the workflow converts the
DOCX in the warm LibreOffice, puts each party's field at its ``[[sign:KEY]]`` anchor, both
parties sign, and the sealed PDF validates, with every stamp on blank space below its anchor.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from pypdf import PdfReader
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from dealdesk.worker import open_pki
from documents.assembly import assemble, pricing_table, section
from documents.intake import find_anchors
from store.blobs import BlobStore
from tests.envelope_support import Cast, act, envelope, recipients, send
from tests.pdfs import pdfsig_report, pyhanko_verdicts
from tests.support import eventually
from tests.test_assembly import (
    COVER,
    LINES,
    SIGNERS,
    TEMPLATES,
    TOTALS,
    bbox_words,
    needs_libreoffice,
)
from web.services import envelopes as svc

pytestmark = needs_libreoffice


@pytest.mark.timeout(300)
async def test_a_proposal_is_signed_at_its_anchors_and_no_stamp_covers_text(
        sessions: sessionmaker[Session], client: Client, settings: Settings, worker: str,
        cast: Cast) -> None:
    order_form = next(p for p in TEMPLATES if "order-form" in p.name)
    proposal = assemble(COVER, [section("Order form", order_form.read_bytes()),
                                pricing_table(LINES, "USD", TOTALS)], SIGNERS)
    buyer, seller = SIGNERS
    eid = await send(sessions, client, settings, cast, svc.EnvelopeIn(
        title="Proposal Q-12 v2", document_name="Proposal Q-12 v2.docx", document=proposal,
        recipients=[svc.RecipientIn(buyer.name, "hank@globex.test", anchor=buyer.key,
                                    routing_order=1),
                    svc.RecipientIn(seller.name, cast.sender.email, anchor=seller.key,
                                    routing_order=2, user_id=cast.sender.id)]))
    await eventually(lambda: recipients(sessions, eid)["hank@globex.test"] == "sent",
                     timeout=120)
    await act(sessions, client, eid, "hank@globex.test")
    await eventually(lambda: recipients(sessions, eid)[cast.sender.email] == "sent", timeout=30)
    await act(sessions, client, eid, cast.sender.email)
    done = await eventually(lambda: (e := envelope(sessions, eid)).status == "completed" and e,
                            timeout=60)

    blobs = BlobStore(settings.blob_dir)
    final = blobs.get(done.final_sha256 or "")
    pki = open_pki(settings)
    verdicts = await asyncio.to_thread(pyhanko_verdicts, final, pki)
    assert sum(not v.timestamp for v in verdicts) == 2
    assert all(v.intact and v.valid and v.trusted for v in verdicts), verdicts
    poppler = await asyncio.to_thread(pdfsig_report, final, pki)
    assert [poppler[f] for f in poppler if f.startswith("sig-")] == [
        ("Signature is Valid.", "Certificate is Trusted.")] * 2

    # Each signed field sits just below its party's anchor, on blank space.
    original = blobs.get(done.original_sha256)
    anchors = {a.label: a for a in find_anchors(original)}
    reader = PdfReader(io.BytesIO(final))
    last = len(reader.pages) - 1
    height = float(reader.pages[last].mediabox.height)
    words = bbox_words(original, last)
    stamps = [a.get_object() for a in reader.pages[last].get("/Annots", [])
              if a.get_object().get("/FT") == "/Sig" and a.get_object().get("/V")]
    assert len(stamps) == 2
    for signer in SIGNERS:
        anchor = anchors[signer.key]
        assert anchor.page_index == last
        x1, y1, x2, y2 = (float(v) for v in next(
            s["/Rect"] for s in stamps if abs(float(s["/Rect"][0]) - anchor.x0) < 2
            and float(s["/Rect"][3]) <= anchor.y0))
        for text, (wx0, wy0, wx1, wy1) in words:  # pdftotext: origin top left
            covered = wx0 < x2 and wx1 > x1 and height - wy1 < y2 and height - wy0 > y1
            assert not covered, (signer.key, text)
