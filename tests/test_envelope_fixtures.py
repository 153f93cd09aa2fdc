"""Every awkward PDF of the robustness set, sent as a real envelope: either refused at upload
with a reason (and nothing stored), or signed, sealed and validated. Never a 500, never an
envelope stuck half-way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from dealdesk.worker import open_pki
from store.blobs import BlobStore
from store.models import Envelope
from tests.envelope_support import Cast, act, envelope, recipients, send
from tests.pdfs import pdfsig_report, pyhanko_verdicts
from tests.support import eventually
from web.errors import Invalid
from web.services import envelopes as svc

FIXTURES = Path(__file__).parent / "fixtures" / "robustness"
# What upload refuses, and the words the refusal must use (see tests/test_intake.py).
REFUSED = {
    "pdfjs__xfa_issue14315.pdf": "XFA",
    "pyhanko__minimal-pubkey-aes256.pdf": "encrypted",
    "pyhanko__minimal-with-field-aes256.pdf": "encrypted",
    "qpdf__enc-R2_V1_U-view_O-master.pdf": "encrypted",
    "qpdf__enc-XI-R6_V5_U-view_O-master.pdf": "encrypted",
    "safedocs__CompactedPDFSyntaxTest.pdf": "damaged|malformed|can't be read|cannot be read",
}


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.pdf")))
async def test_fixture_is_signed_or_refused(
        name: str, sessions: sessionmaker[Session], client: Client, settings: Settings,
        worker: str, cast: Cast) -> None:
    inp = svc.EnvelopeIn(title=f"Fixture {name}", document_name=name,
                         document=(FIXTURES / name).read_bytes(),
                         recipients=[svc.RecipientIn("Ann Buyer", "ann@globex.test"),
                                     svc.RecipientIn(cast.cfo.name, cast.cfo.email,
                                                     routing_order=2, user_id=cast.cfo.id)])
    if name in REFUSED:
        with pytest.raises(Invalid, match=REFUSED[name]):
            await send(sessions, client, settings, cast, inp)
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(Envelope)) == 0
        return
    eid = await send(sessions, client, settings, cast, inp)
    await eventually(lambda: recipients(sessions, eid)["ann@globex.test"] == "sent",
                     timeout=30)
    await act(sessions, client, eid, "ann@globex.test")
    await eventually(lambda: recipients(sessions, eid)[cast.cfo.email] == "sent", timeout=30)
    await act(sessions, client, eid, cast.cfo.email)
    done = await eventually(lambda: envelope(sessions, eid).status == "completed"
                            and envelope(sessions, eid), timeout=60)
    final = BlobStore(settings.blob_dir).get(done.final_sha256 or "")
    pki = open_pki(settings)
    verdicts = await asyncio.to_thread(pyhanko_verdicts, final, pki)
    ours = [v for v in verdicts if v.field.startswith("sig-r")]
    assert len(ours) == 2, verdicts
    for v in ours:
        assert v.intact and v.valid and v.trusted and v.docmdp_ok, v
    poppler = await asyncio.to_thread(pdfsig_report, final, pki)
    for v in ours:
        assert poppler[v.field] == ("Signature is Valid.", "Certificate is Trusted."), poppler
