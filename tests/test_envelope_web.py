"""The envelope pages over HTTP against the live app (uvicorn + worker): the signing link's
404/410/turn rules, the identity gate and its lockout, signing and declining as the token's
recipient only, the new-envelope form's refusals, the "who hasn't signed" report and who may
see and act on an envelope."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
import struct
import zlib
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image, ImageDraw
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.envelopes import token_hash
from dealdesk.settings import Settings
from store.blobs import BlobStore
from store.models import (
    AuditEvent,
    Envelope,
    EnvelopeEvent,
    EnvelopeRecipient,
    OutboxMessage,
    User,
)
from tests.envelope_support import envelope
from tests.pdfs import contract_pdf
from tests.support import eventually, make_user
from tests.web_support import People, browser_session, seed_people
from web.services import envelopes as svc
from workflows.envelope_messages import Client as ClientInfo

LINK = re.compile(r"/sign/([A-Za-z0-9_-]{20,})")
CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A 1 MB upload limit keeps the oversize test small."""
    return settings.model_copy(update={"max_upload_mb": 1})


@dataclass
class Cast:
    people: People
    rep2: User
    cfo: User


@pytest.fixture
def cast(sessions: sessionmaker[Session]) -> Cast:
    people = seed_people(sessions)
    with sessions.begin() as s:
        rep2 = make_user(s, "Ray Rep", "rep")
        cfo = make_user(s, "Cleo CFO", "cfo")
        s.expunge_all()
    return Cast(people, rep2, cfo)


async def send(sessions: sessionmaker[Session], client: Client, settings: Settings,
               sender: User, *recipients: svc.RecipientIn, title: str = "MSA — Globex") -> int:
    with sessions() as s:
        user = s.get(User, sender.id)
        assert user is not None
        env = await svc.create_envelope(
            s, client, settings, BlobStore(settings.blob_dir), user,
            svc.EnvelopeIn(title=title, document_name="msa.pdf", document=contract_pdf(3),
                           recipients=list(recipients)))
        return env.id


async def token_for(sessions: sessionmaker[Session], email: str) -> str:
    """The signing token from the newest invitation mailed to ``email``."""
    def find() -> str | None:
        with sessions() as s:
            bodies = s.scalars(select(OutboxMessage.body).where(
                OutboxMessage.to_addr == email).order_by(OutboxMessage.id.desc())).all()
        for body in bodies:
            if m := LINK.search(body):
                return m.group(1)
        return None
    return await eventually(find, timeout=20)


def recipient(sessions: sessionmaker[Session], envelope_id: int, email: str
              ) -> EnvelopeRecipient:
    with sessions() as s:
        r = s.scalar(select(EnvelopeRecipient).where(
            EnvelopeRecipient.envelope_id == envelope_id, EnvelopeRecipient.email == email))
        assert r is not None
        s.expunge(r)
        return r


async def open_page(anon: httpx.AsyncClient, token: str) -> tuple[httpx.Response, str]:
    page = await anon.get(f"/sign/{token}")
    m = CSRF.search(page.text)
    return page, m.group(1) if m else ""


def tiny_png() -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00\x00")) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


async def test_forged_expired_and_out_of_turn_links(
        live_url: str, sessions: sessionmaker[Session], client: Client, settings: Settings,
        cast: Cast) -> None:
    eid = await send(sessions, client, settings, cast.people.rep,
                     svc.RecipientIn("Ann Buyer", "ann@globex.test", routing_order=1),
                     svc.RecipientIn("Zed Later", "zed@globex.test", routing_order=2))
    token = await token_for(sessions, "ann@globex.test")
    async with httpx.AsyncClient(base_url=live_url) as anon:
        r = await anon.get("/sign/" + "A" * 43)
        assert r.status_code == 404 and "This signing link is not valid" in r.text
        assert r.headers["cache-control"] == "no-store"

        # Zed's turn comes after Ann's: a link for him shows who we wait for, and no button.
        zed_token = "z" * 43
        with sessions.begin() as s:
            zed = s.scalar(select(EnvelopeRecipient).where(
                EnvelopeRecipient.email == "zed@globex.test"))
            assert zed is not None
            zed.link_token_hash = token_hash(zed_token)
            zed.link_expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        page, csrf = await open_page(anon, zed_token)
        assert page.status_code == 200 and "Waiting for Ann Buyer" in page.text
        assert f"/sign/{zed_token}/sign" not in page.text
        r = await anon.post(f"/sign/{zed_token}/sign", data={
            "csrf_token": csrf, "typed_name": "Zed Later", "agree": "yes"})
        assert r.status_code == 409 and "Waiting for Ann Buyer" in r.text
        assert recipient(sessions, eid, "zed@globex.test").status == "created"

        page, _ = await open_page(anon, token)
        assert page.status_code == 200 and f"/sign/{token}/pages/1.png" in page.text
        png = await anon.get(f"/sign/{token}/pages/1.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert (await anon.get(f"/sign/{token}/pages/4.png")).status_code == 404

        with sessions.begin() as s:
            ann = s.scalar(select(EnvelopeRecipient).where(
                EnvelopeRecipient.email == "ann@globex.test"))
            assert ann is not None
            ann.link_expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        r = await anon.get(f"/sign/{token}")
        assert r.status_code == 410 and "expired" in r.text
        assert (await anon.get(f"/sign/{token}/pages/1.png")).status_code == 410


async def test_a_token_signs_as_its_own_recipient_only(
        live_url: str, sessions: sessionmaker[Session], client: Client, settings: Settings,
        cast: Cast) -> None:
    eid = await send(sessions, client, settings, cast.people.rep,
                     svc.RecipientIn("Ann Buyer", "ann@globex.test"),
                     svc.RecipientIn("Ben Buyer", "ben@globex.test"))
    token = await token_for(sessions, "ann@globex.test")
    ben = recipient(sessions, eid, "ben@globex.test")
    async with httpx.AsyncClient(base_url=live_url) as anon:
        page, csrf = await open_page(anon, token)
        assert page.status_code == 200
        ann = recipient(sessions, eid, "ann@globex.test")
        assert ann.status == "viewed" and ann.viewed_at is not None
        r = await anon.post(f"/sign/{token}/sign", data={
            "csrf_token": csrf, "typed_name": "Ann Buyer", "agree": ""})
        assert r.status_code == 422 and "I agree to sign electronically" in r.text
        r = await anon.post(f"/sign/{token}/sign", data={
            "csrf_token": csrf, "typed_name": "Ann B. Buyer", "agree": "yes",
            "drawing": drawn_png(), "recipient_id": str(ben.id)})
        assert r.status_code == 200 and "Signed — thank you" in r.text
    assert recipient(sessions, eid, "ann@globex.test").status == "signed"
    assert recipient(sessions, eid, "ben@globex.test").status == "sent"
    with sessions() as s:
        signed = s.scalar(select(EnvelopeEvent).where(
            EnvelopeEvent.envelope_id == eid, EnvelopeEvent.kind == "signed"))
        viewed = s.scalar(select(EnvelopeEvent).where(
            EnvelopeEvent.envelope_id == eid, EnvelopeEvent.kind == "viewed"))
    assert signed is not None and signed.recipient_id == ann.id
    assert signed.detail["typed_name"] == "Ann B. Buyer"
    assert len(signed.detail["drawn_signature_sha256"]) == 64
    assert viewed is not None and viewed.ip == "127.0.0.1"
    with sessions() as s:
        pdf = BlobStore(settings.blob_dir).get(s.get_one(Envelope, eid).current_sha256)
    assert stamp_images(pdf, ann.field_name) == [(90, 30)]  # the drawing, in Ann's stamp


def drawn_png() -> str:
    """A 90 x 30 scribble with a transparent background, as the signer page posts it."""
    img = Image.new("RGBA", (90, 30), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(4, 25), (30, 5), (50, 25), (86, 5)], fill=(20, 20, 90, 255),
                             width=3)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def stamp_images(pdf: bytes, field: str | None) -> list[tuple[int, int]]:
    """Width and height of every image drawn in ``field``'s stamp (its normal appearance)."""
    reader = PdfFileReader(io.BytesIO(pdf))
    found: list[tuple[int, int]] = []

    def walk(xobject: generic.StreamObject) -> None:
        resources = xobject.get("/Resources")
        for ref in (resources.get("/XObject", {}) if resources else {}).values():
            obj = ref.get_object()
            if obj["/Subtype"] == "/Image":
                found.append((int(obj["/Width"]), int(obj["/Height"])))
            else:
                walk(obj)

    for name, _, ref in fields.enumerate_sig_fields(reader, filled_status=True):
        if name == field:
            walk(ref.get_object()["/AP"]["/N"].get_object())
    return found


async def test_wrong_codes_lock_the_link(live_url: str, sessions: sessionmaker[Session],
                                         client: Client, settings: Settings,
                                         cast: Cast) -> None:
    eid = await send(sessions, client, settings, cast.people.rep,
                     svc.RecipientIn("Ann Buyer", "ann@globex.test", auth_method="access_code",
                                     access_code="4321"),
                     svc.RecipientIn("Ben Buyer", "ben@globex.test", auth_method="email_otp"))
    ann_token = await token_for(sessions, "ann@globex.test")
    ben_token = await token_for(sessions, "ben@globex.test")
    async with httpx.AsyncClient(base_url=live_url) as anon:
        page, csrf = await open_page(anon, ann_token)
        assert "Enter your access code" in page.text and "/pages/1.png" not in page.text
        for attempt in range(1, 5):
            r = await anon.post(f"/sign/{ann_token}/code", data={"csrf_token": csrf,
                                                                  "code": "0000"})
            assert r.status_code == 422, attempt
            assert f"{5 - attempt} tr" in r.text
        r = await anon.post(f"/sign/{ann_token}/code", data={"csrf_token": csrf, "code": "0"})
        assert r.status_code == 429 and "try again after" in r.text
        assert int(r.headers["retry-after"]) > 800
        r = await anon.post(f"/sign/{ann_token}/code", data={"csrf_token": csrf,
                                                              "code": "4321"})
        assert r.status_code == 429  # locked even with the right code
        page, _ = await open_page(anon, ann_token)
        assert "try again after" in page.text  # said before another code is typed
        ann = recipient(sessions, eid, "ann@globex.test")
        assert ann.verified_at is None
        with sessions() as s:  # four wrong codes, then the lock: each one audit row
            trail = s.scalars(select(AuditEvent).where(
                AuditEvent.entity == f"envelope:{eid}",
                AuditEvent.action.in_(("envelope.code_rejected", "envelope.locked")))
                .order_by(AuditEvent.id)).all()
            assert [e.action for e in trail] == ["envelope.code_rejected"] * 4 + [
                "envelope.locked"]
            assert {(e.actor_kind, e.actor_email) for e in trail} == {
                ("recipient", "ann@globex.test")}
            assert trail[-1].data["ip"] == "127.0.0.1"
            locked = s.scalar(select(EnvelopeEvent).where(EnvelopeEvent.kind == "locked"))
            assert locked is not None and locked.recipient_id == ann.id

        # The emailed code: send, read the mail, enter it; the document shows.
        page, csrf = await open_page(anon, ben_token)
        assert "Email me a code" in page.text
        r = await anon.post(f"/sign/{ben_token}/send-code", data={"csrf_token": csrf})
        assert r.status_code == 200 and "b•••@globex.test" in r.text
        with sessions() as s:
            mail = s.scalar(select(OutboxMessage).where(
                OutboxMessage.to_addr == "ben@globex.test",
                OutboxMessage.subject.startswith("Your code")))
        assert mail is not None
        code = re.search(r"\b(\d{6})\b", mail.body)
        assert code
        r = await anon.post(f"/sign/{ben_token}/code", data={"csrf_token": csrf,
                                                              "code": code.group(1)})
        assert r.status_code == 303
        page = await anon.get(f"/sign/{ben_token}")
        assert f"/sign/{ben_token}/pages/1.png" in page.text
    # Another browser (no session mark) is asked again.
    async with httpx.AsyncClient(base_url=live_url) as other:
        page, _ = await open_page(other, ben_token)
        assert "Email me a code" in page.text or "Code from the email" in page.text


async def test_decline_ends_the_envelope_and_mails_the_sender(
        live_url: str, sessions: sessionmaker[Session], client: Client, settings: Settings,
        cast: Cast) -> None:
    eid = await send(sessions, client, settings, cast.people.rep,
                     svc.RecipientIn("Ann Buyer", "ann@globex.test"), title="Decline me")
    token = await token_for(sessions, "ann@globex.test")
    async with httpx.AsyncClient(base_url=live_url) as anon:
        _, csrf = await open_page(anon, token)
        r = await anon.post(f"/sign/{token}/decline", data={"csrf_token": csrf, "reason": " "})
        assert r.status_code == 422 and "reason is required" in r.text
        r = await anon.post(f"/sign/{token}/decline", data={"csrf_token": csrf,
                                                            "reason": "Price <b>wrong</b>"})
        assert r.status_code == 200 and "Declined" in r.text

    def outcome() -> bool:
        with sessions() as s:
            env = s.get(Envelope, eid)
            mail = s.scalar(select(OutboxMessage).where(
                OutboxMessage.subject == "Declined: Decline me"))
            return bool(env and env.status == "declined" and mail
                        and mail.to_addr == cast.people.rep.email)
    await eventually(outcome, timeout=20)
    web, _ = await browser_session(live_url, cast.people.rep)
    page = await web.get(f"/envelopes/{eid}")
    assert "Price &lt;b&gt;wrong&lt;/b&gt;" in page.text  # escaped
    await web.aclose()


async def test_new_envelope_form(live_url: str, sessions: sessionmaker[Session],
                                 cast: Cast) -> None:
    web, csrf = await browser_session(live_url, cast.people.rep)
    form = {"csrf_token": csrf, "title": "Form MSA", "message": "Hi", "expires": "30",
            "remind": "3", "r_name": ["Ann Buyer", ""], "r_email": ["ann@globex.test", ""],
            "r_role": ["signer", "signer"], "r_order": ["1", "1"], "r_auth": ["none", "none"],
            "r_code": ["", ""], "r_anchor": ["", ""]}
    big = {"document": ("big.pdf", b"%PDF-1.7\n" + b"0" * (2 * 1024 * 1024), "application/pdf")}
    r = await web.post("/envelopes/new", data=form, files=big)
    assert r.status_code == 413 and "1 MB" in r.text

    r = await web.post("/envelopes/new", data=form,
                       files={"document": ("notes.pdf", b"hello, not a pdf", "application/pdf")})
    assert r.status_code == 422 and "notes.pdf is not a PDF" in r.text
    assert 'value="Form MSA"' in r.text and 'value="ann@globex.test"' in r.text

    bad = {**form, "r_email": ["not-an-email", ""]}
    pdf = {"document": ("msa.pdf", contract_pdf(2), "application/pdf")}
    r = await web.post("/envelopes/new", data=bad, files=pdf)
    assert r.status_code == 422 and "is not an email address" in r.text
    assert 'name="kept_sha"' in r.text  # the good document is kept for the next try
    kept = {k: re.search(rf'name="{k}" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
            for k in ("kept_sha", "kept_name", "kept_sig")}
    r = await web.post("/envelopes/new", data={**form, **kept, "countersigner": str(cast.cfo.id)})
    assert r.status_code == 303, r.text
    eid = int(r.headers["location"].rsplit("/", 1)[1])
    with sessions() as s:
        env = s.get(Envelope, eid)
        assert env is not None and env.document_name == "msa.pdf"
        assert [(x.name, x.routing_order, x.user_id) for x in env.recipients] == [
            ("Ann Buyer", 1, None), ("Cleo CFO", 2, cast.cfo.id)]
    await eventually(lambda: envelope(sessions, eid).status == "sent")
    page = await web.get(f"/envelopes/{eid}")
    assert page.status_code == 200 and "Ann Buyer" in page.text
    assert f'hx-get="/envelopes/{eid}?live=sent.0"' in page.text
    pdf_file = await web.get(f"/envelopes/{eid}/files/original.pdf")
    assert pdf_file.status_code == 200 and pdf_file.content.startswith(b"%PDF")
    assert pdf_file.headers["content-disposition"] == (
        "attachment; filename=\"msa.pdf\"; filename*=UTF-8''msa.pdf")
    await web.aclose()


async def test_waiting_report_and_who_may_see_and_act(
        live_url: str, sessions: sessionmaker[Session], client: Client, settings: Settings,
        cast: Cast) -> None:
    p = cast.people
    first = await send(sessions, client, settings, p.rep,
                       svc.RecipientIn("Newer Signer", "new@globex.test"), title="Newer")
    second = await send(sessions, client, settings, p.rep,
                        svc.RecipientIn("Older Signer", "old@globex.test"), title="Older")
    await token_for(sessions, "new@globex.test")
    await token_for(sessions, "old@globex.test")
    with sessions.begin() as s:
        old = s.scalar(select(EnvelopeRecipient).where(
            EnvelopeRecipient.email == "old@globex.test"))
        assert old is not None
        old.sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=9, hours=1)

    rep, rep_csrf = await browser_session(live_url, p.rep)
    report = (await rep.get("/envelopes/waiting")).text
    assert report.index("Older Signer") < report.index("Newer Signer")
    assert re.search(r'<span class="due late">9</span>', report)
    listing = (await rep.get("/envelopes?view=waiting")).text
    assert "Older Signer" in listing and "Newer Signer" in listing

    auditor, auditor_csrf = await browser_session(live_url, p.auditor)
    assert (await auditor.get(f"/envelopes/{first}")).status_code == 200
    assert (await auditor.get("/envelopes/new")).status_code == 403
    for action, data in (("remind", {}), ("void", {"reason": "no"})):
        r = await auditor.post(f"/envelopes/{first}/{action}",
                               data={"csrf_token": auditor_csrf, **data})
        assert r.status_code == 403, action
    assert "Remind</button>" not in (await auditor.get("/envelopes/waiting")).text

    other, _ = await browser_session(live_url, cast.rep2)
    assert (await other.get(f"/envelopes/{first}")).status_code == 404
    assert (await other.get(f"/envelopes/{first}/files/original.pdf")).status_code == 404
    assert "Newer" not in (await other.get("/envelopes")).text

    legal, legal_csrf = await browser_session(live_url, p.legal)
    r = await legal.post(f"/envelopes/{second}/remind", data={"csrf_token": legal_csrf})
    assert r.status_code == 303
    r = await rep.post(f"/envelopes/{first}/void", data={"csrf_token": rep_csrf, "reason": ""})
    assert r.status_code == 422 and "reason is required" in r.text
    r = await rep.post(f"/envelopes/{first}/void", data={"csrf_token": rep_csrf,
                                                         "reason": "Wrong customer"})
    assert r.status_code == 303

    def voided() -> bool:
        with sessions() as s:
            env = s.get(Envelope, first)
            return env is not None and env.status == "voided"
    await eventually(voided)
    ended = (await rep.get("/envelopes?view=ended")).text
    assert "Newer" in ended and "Older" not in ended
    for c in (rep, auditor, other, legal):
        await c.aclose()


async def test_an_internal_countersigner_signs_from_the_envelope_page(
        live_url: str, sessions: sessionmaker[Session], client: Client, settings: Settings,
        cast: Cast) -> None:
    legal = cast.people.legal
    eid = await send(sessions, client, settings, cast.people.rep,
                     svc.RecipientIn("Ann Buyer", "ann@globex.test"),
                     svc.RecipientIn(legal.name, legal.email, routing_order=2,
                                     user_id=legal.id))
    token = await token_for(sessions, "ann@globex.test")
    web, csrf = await browser_session(live_url, legal)
    page = await web.get(f"/envelopes/{eid}")
    assert "Your turn" not in page.text and "Remind</button>" in page.text  # legal may remind
    with sessions() as s:
        env = svc.get_envelope(s, eid)
        ann = next(r for r in env.recipients if r.email == "ann@globex.test")
        await svc.sign(client, env, ann, "Ann Buyer", ClientInfo("203.0.113.9", "UA"))

    async def my_turn() -> bool:
        r = await web.get(f"/envelopes/{eid}?live=sent.0", headers={"HX-Request": "true"})
        return r.status_code == 204 and r.headers.get("hx-refresh") == "true"
    await eventually(my_turn, timeout=20)  # the polling page reloads to show the panel
    page = await web.get(f"/envelopes/{eid}")
    assert "Your turn to sign" in page.text
    inbox = await web.get("/inbox")  # and their inbox lists it
    assert "Waiting for your signature" in inbox.text and f"/envelopes/{eid}" in inbox.text
    r = await web.post(f"/envelopes/{eid}/sign", data={"csrf_token": csrf,
                                                       "typed_name": legal.name})
    assert r.status_code == 422 and "I agree to sign electronically" in r.text
    r = await web.post(f"/envelopes/{eid}/sign", data={"csrf_token": csrf,
                                                       "typed_name": legal.name, "agree": "yes"})
    assert r.status_code == 303 and r.headers["location"] == f"/envelopes/{eid}?notice=signed"

    def completed() -> bool:
        with sessions() as s:
            env = s.get(Envelope, eid)
            return env is not None and env.status == "completed"
    await eventually(completed, timeout=40)
    after = await web.get(f"/envelopes/{eid}?notice=signed")  # the last signer lands here
    assert "Signed." in after.text and "next recipients are invited" not in after.text
    final = await web.get(f"/envelopes/{eid}/files/final.pdf")
    assert final.status_code == 200 and final.content.startswith(b"%PDF")
    assert 'filename="msa (signed).pdf"' in final.headers["content-disposition"]
    cert = await web.get(f"/envelopes/{eid}/files/certificate.pdf")
    assert cert.status_code == 200 and cert.content.startswith(b"%PDF")
    assert (await web.get(f"/envelopes/{eid}/files/nonsense.pdf")).status_code == 404
    page = await web.get(f"/envelopes/{eid}")
    assert "hx-trigger" not in page.text.split('id="live"')[1].split(">")[0]  # polling stops
    async with httpx.AsyncClient(base_url=live_url) as anon:
        r = await anon.get(f"/sign/{token}")
        assert r.status_code == 410 and "This envelope is complete" in r.text
    await web.aclose()


def test_signing_links_stay_out_of_the_access_log() -> None:
    import logging

    from web.routes.signer import _REDACT

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("1.2.3.4", "GET", "/sign/abcDEF_123-x/pages/1.png", "1.1", 200),
                               None)
    assert _REDACT.filter(record)
    assert "abcDEF" not in record.getMessage() and "/sign/…/pages/1.png" in record.getMessage()
