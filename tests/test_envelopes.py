"""EnvelopeWorkflow on the real Temporal dev server: routing order, parallel signers,
countersignature, sealing, refusals, decline, void; every final PDF validated by pyHanko
(diff analysis) and poppler's pdfsig."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import docx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from dealdesk.worker import open_pki
from documents.intake import accept_pdf, find_anchors
from documents.pki import Pki
from documents.placement import FieldRequest, place_fields
from documents.verify import verify_pdf
from store.blobs import BlobStore
from store.models import Envelope, EnvelopeEvent, EnvelopeRecipient, OutboxMessage, User
from tests.envelope_support import Cast, act, envelope, recipients, send, three_party
from tests.pdfs import contract_pdf, pdfsig_report, pyhanko_verdicts
from tests.support import eventually, replays
from tests.test_convert import corrupt_document_xml
from tests.test_intake import _changed_page_text, presigned
from web.errors import Conflict, Gone, Invalid
from web.services import envelopes as svc
from workflows.envelope import EnvelopeWorkflow


async def test_two_parallel_signers_then_the_cfo_countersigns(
        sessions: sessionmaker[Session], client: Client, settings: Settings, worker: str,
        cast: Cast) -> None:
    eid = await send(sessions, client, settings, cast, three_party(cast))
    await eventually(lambda: recipients(sessions, eid)["ann@globex.test"] == "sent")
    assert recipients(sessions, eid)[cast.cfo.email] == "created"  # not their turn yet

    with pytest.raises(Conflict, match="Waiting for Ann Buyer and Ben Buyer"):
        await act(sessions, client, eid, cast.cfo.email)
    # Both customers at the same moment: their signatures still go in one after the other.
    await asyncio.gather(act(sessions, client, eid, "ann@globex.test"),
                         act(sessions, client, eid, "ben@globex.test"))
    with pytest.raises(Conflict, match="already signed"):
        await act(sessions, client, eid, "ann@globex.test")
    await eventually(lambda: recipients(sessions, eid)[cast.cfo.email] == "sent")
    await act(sessions, client, eid, cast.cfo.email)
    done = await eventually(lambda: envelope(sessions, eid).status == "completed"
                            and envelope(sessions, eid), timeout=30)

    pki = open_pki(settings)
    blobs = BlobStore(settings.blob_dir)
    final = blobs.get(done.final_sha256 or "")
    verdicts = await asyncio.to_thread(pyhanko_verdicts, final, pki)
    people = [v for v in verdicts if not v.timestamp]
    assert len(people) == 3 and sum(v.timestamp for v in verdicts) == 1
    for v in verdicts:
        assert v.intact and v.valid and v.trusted, v
    for v in people:
        assert v.docmdp_ok, v
    poppler = pdfsig_report(final, pki)
    assert len(poppler) >= 3
    for field, (sig, cert) in poppler.items():
        if field.startswith("sig-"):
            assert (sig, cert) == ("Signature is Valid.", "Certificate is Trusted."), field

    certificate = blobs.get(done.certificate_sha256 or "")
    (seal,) = await asyncio.to_thread(pyhanko_verdicts, certificate, pki)
    assert seal.intact and seal.valid and seal.trusted
    assert (await asyncio.to_thread(pdfsig_report, certificate, pki))["seal"] == (
        "Signature is Valid.", "Certificate is Trusted.")
    with sessions() as s:
        kinds = [e.kind for e in s.scalars(select(EnvelopeEvent).where(
            EnvelopeEvent.envelope_id == eid).order_by(EnvelopeEvent.id))]
        mail = s.scalars(select(OutboxMessage).where(
            OutboxMessage.subject == "Completed: MSA — Globex")).all()
    assert kinds.count("signed") == 3 and kinds[-2:] == ["sealed", "completed"]
    # The whole run replays deterministically on today's code (and tests/test_replay.py
    # replays a saved run of it against every future change).
    await replays(client, done.workflow_id, [EnvelopeWorkflow])
    assert {m.to_addr for m in mail} == {"ann@globex.test", "ben@globex.test",
                                         cast.cfo.email, cast.sender.email}
    assert all(len(m.attachments) == 2 for m in mail)


async def test_decline_ends_the_envelope_and_tells_the_sender(
        sessions: sessionmaker[Session], client: Client, settings: Settings, worker: str,
        cast: Cast) -> None:
    eid = await send(sessions, client, settings, cast, three_party(cast))
    await eventually(lambda: recipients(sessions, eid)["ben@globex.test"] == "sent")
    with pytest.raises(Invalid, match="reason is required"):
        await act(sessions, client, eid, "ben@globex.test", "decline", " ")
    await act(sessions, client, eid, "ben@globex.test", "decline", "Price is wrong")
    await eventually(lambda: envelope(sessions, eid).status == "declined")
    with sessions() as s:
        note = s.scalar(select(OutboxMessage).where(OutboxMessage.subject ==
                                                    "Declined: MSA — Globex"))
    assert note is not None and note.to_addr == cast.sender.email
    assert "Price is wrong" in note.body
    with pytest.raises(Gone, match="declined"):
        await act(sessions, client, eid, "ann@globex.test")


async def test_void_by_the_sender(sessions: sessionmaker[Session], client: Client,
                                  settings: Settings, worker: str, cast: Cast) -> None:
    eid = await send(sessions, client, settings, cast, three_party(cast))
    await eventually(lambda: recipients(sessions, eid)["ann@globex.test"] == "sent")
    with sessions() as s:
        env = svc.get_envelope(s, eid)
        sender = s.get(User, cast.sender.id)
        assert sender is not None
        await svc.void(client, env, sender, "Wrong customer")
    await eventually(lambda: envelope(sessions, eid).status == "voided")
    with sessions() as s:
        told = {m.to_addr for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.subject == "Voided: MSA — Globex"))}
    assert told == {"ann@globex.test", "ben@globex.test", cast.sender.email}


async def test_bad_envelopes_are_refused_and_nothing_is_written(
        sessions: sessionmaker[Session], client: Client, settings: Settings,
        cast: Cast, tmp_path: Path) -> None:
    theirs = Pki(tmp_path / "theirs", "their-passphrase", org_name="Customer CA",
                 base_url="http://127.0.0.1:9")
    tampered = _changed_page_text(await asyncio.to_thread(presigned, theirs))
    cases = [
        (three_party(cast, document=tampered, document_name="signed.pdf"),
         "signature 'Sig1' by Jane Doe does not match the document"),
        (three_party(cast, document=b"hello", document_name="x.pdf"), "not a PDF"),
        (three_party(cast, title=" "), "title"),
        (three_party(cast, recipients=[svc.RecipientIn("A", "not-an-email")]), "email"),
        (three_party(cast, recipients=[svc.RecipientIn("A", "a@x.test", anchor="buyer")]),
         "no \\[\\[sign:buyer\\]\\] anchor"),
        (three_party(cast, recipients=[svc.RecipientIn("A", "a@x.test", role="cc")]),
         "at least one signer"),
    ]
    for inp, message in cases:
        with pytest.raises(Invalid, match=message):
            await send(sessions, client, settings, cast, inp)
    with sessions() as s:
        assert s.scalar(select(Envelope.id)) is None


async def test_a_docx_is_converted_by_its_workflow_and_a_broken_one_fails_with_a_reason(
        sessions: sessionmaker[Session], client: Client, settings: Settings, worker: str,
        cast: Cast) -> None:
    """The create answers at once ("preparing"); the workflow converts the Word contract with
    the real (warm) LibreOffice, places the field at its anchor and invites the signer. A DOCX
    LibreOffice can't read ends "failed" with a reason naming the file, nobody is invited, and
    the sender is told."""
    document = docx.Document()
    document.add_paragraph("Order form. Signed for the customer: [[sign:customer]]")
    buf = io.BytesIO()
    document.save(buf)
    order = svc.EnvelopeIn(title="Order form", document_name="Order form.docx",
                           document=buf.getvalue(), recipients=[svc.RecipientIn(
                               "Ann Buyer", "ann@globex.test", anchor="customer")])
    eid = await send(sessions, client, settings, cast, order)
    assert envelope(sessions, eid).status == "preparing"
    await eventually(lambda: recipients(sessions, eid)["ann@globex.test"] == "sent",
                     timeout=60)
    env = envelope(sessions, eid)
    assert env.status == "sent" and env.progress is None
    assert env.document_name == "Order form.pdf" and env.page_count == 1
    with sessions() as s:
        ann = s.scalar(select(EnvelopeRecipient).where(EnvelopeRecipient.envelope_id == eid))
        assert ann is not None and ann.field_page == 0 and ann.field_name
    assert find_anchors(BlobStore(settings.blob_dir).get(env.original_sha256))

    broken = svc.EnvelopeIn(title="Broken", document_name="Contract.docx",
                            document=corrupt_document_xml(buf.getvalue()),
                            recipients=[svc.RecipientIn("Bo Buyer", "bo@globex.test")])
    bad = await send(sessions, client, settings, cast, broken)
    await eventually(lambda: envelope(sessions, bad).status == "failed", timeout=60)
    assert "Contract.docx" in (envelope(sessions, bad).ended_reason or "")
    assert recipients(sessions, bad)["bo@globex.test"] == "created"
    with sessions() as s:
        told = s.scalars(select(OutboxMessage.subject).where(
            OutboxMessage.to_addr == cast.sender.email)).all()
        assert any("Broken" in subject for subject in told)
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.to_addr == "bo@globex.test")) == 0


def test_fields_go_below_their_anchor_or_stack_on_the_last_page() -> None:
    pdf = contract_pdf(2, anchors={1: ["buyer", "seller"]})  # anchors at y≈120 on page 2
    doc = accept_pdf(pdf, filename="c.pdf", max_bytes=10**7)
    anchors = find_anchors(doc.data)
    buyer = next(a for a in anchors if a.label == "buyer")
    placed = place_fields({
        0: FieldRequest("A", anchor="buyer"), 1: FieldRequest("B", page=1, box=(10, 10, 110, 60)),
        2: FieldRequest("C"), 3: FieldRequest("D")}, doc, anchors)
    page, (x1, _, _, y2) = placed[0]
    assert page == 1 and x1 == int(buyer.x0) and y2 <= buyer.y0  # under the text
    assert placed[1] == (0, (10, 10, 110, 60))
    assert placed[2][0] == placed[3][0] == 1  # stacked on the last page, side by side
    assert placed[2][1][2] <= placed[3][1][0] and 4 not in placed


async def test_a_certified_upload_is_signed_in_its_own_field_and_passes_verify(
        sessions: sessionmaker[Session], client: Client, settings: Settings, worker: str,
        cast: Cast, tmp_path: Path) -> None:
    """A customer's certified contract (form filling allowed, one empty Buyer field): the
    signer signs in that field, no field is added (the certification forbids it), and the
    sealed PDF passes dealdesk's verify trusting both CAs. Two signers for one field are
    refused up front."""
    theirs = Pki(tmp_path / "theirs", "their-passphrase", org_name="Customer CA",
                 base_url="http://127.0.0.1:9")
    upload = await asyncio.to_thread(presigned, theirs, certify=True)  # pyHanko's sync API
    one = svc.RecipientIn("Bob Buyer", "bob@acme.test")
    with pytest.raises(Invalid, match="1 empty field"):
        await send(sessions, client, settings, cast, svc.EnvelopeIn(
            title="Certified", document_name="contract.pdf", document=upload,
            recipients=[one, svc.RecipientIn("Cy Buyer", "cy@acme.test")]))
    eid = await send(sessions, client, settings, cast, svc.EnvelopeIn(
        title="Certified", document_name="contract.pdf", document=upload, recipients=[one]))
    await eventually(lambda: recipients(sessions, eid)["bob@acme.test"] == "sent")
    assert envelope(sessions, eid).current_sha256 == envelope(sessions, eid).original_sha256
    await act(sessions, client, eid, "bob@acme.test")
    done = await eventually(lambda: (e := envelope(sessions, eid)).status == "completed" and e,
                            timeout=30)
    final = BlobStore(settings.blob_dir).get(done.final_sha256 or "")
    roots = open_pki(settings).trust_roots() + theirs.trust_roots()
    report = await asyncio.to_thread(verify_pdf, final, roots)
    assert report.valid, report.problems
    assert [s.field_name for s in report.signatures][:2] == ["Sig1", "Buyer"]
