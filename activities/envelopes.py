"""EnvelopeWorkflow's activities: preparing, inviting, signing, sealing, recording outcomes.

Every activity is idempotent. Store writes happen in one transaction with their audit rows
and mail (outbox rows, delivered after commit). Signing and sealing are keyed by
(envelope, recipient or step, input document hash) in ``signature_applications``: a retry
returns the bytes stored the first time instead of signing again. If an attempt dies after
signing but before its commit, the retry signs the same input again, so the document still
gets exactly one signature per signer.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import hashlib
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePath

from pyhanko.sign.signers import Signer
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.mail import Mailer
from dealdesk.faults import crash_point
from documents import signing
from documents.certificate import (
    CompletionRecord,
    DocumentLine,
    EventLine,
    RecipientLine,
    render_certificate,
)
from documents.convert import ConversionFailed, ConverterUnavailable
from documents.filenames import safe_filename
from documents.intake import AnchorSearchFailed, DocumentRefused, accept_pdf, find_anchors
from documents.pki import Pki
from documents.placement import FieldRequest, PlacementError, place_fields
from documents.timestamps import timestamper
from store import audit, invoicing
from store.audit import entity
from store.blobs import BlobStore
from store.db import write_lock
from store.deals import tell_closed
from store.models import (
    Envelope,
    EnvelopeEvent,
    EnvelopeRecipient,
    OutboxMessage,
    Quote,
    SignatureApplication,
)
from store.subscriptions import subscribe
from store.who import Who, is_system_label
from workflows.billing import BillingInput
from workflows.envelope import DOCUMENT_REFUSED
from workflows.envelope_messages import (
    ApplySignatureInput,
    InviteInput,
    OutcomeInput,
    SealResult,
)

Mail = tuple[str, str, str, str, list[object]]  # key, to, subject, body, attachments
EVENT_WORDS = {
    "created": "Created and sent the envelope", "sent": "Was sent a signing link",
    "reminder": "Was reminded", "resend": "Was sent a new link",
    "viewed": "Opened the document", "verified": "Passed identity check",
    "signed": "Signed", "approved": "Approved", "declined": "Declined",
    "voided": "Voided the envelope", "expired": "Envelope expired",
    "sealed": "Sealed with a document timestamp", "completed": "Completed",
    "converted": "Converted the Word document to PDF",
    "failed": "The document could not be prepared",
    "locked": "Was locked out after too many wrong codes",
}



def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_event(s: Session, env: Envelope, kind: str, actor: Who, *, key: str,
              recipient: EnvelopeRecipient | None = None, ip: str | None = None,
              user_agent: str | None = None, auth_method: str | None = None,
              detail: dict[str, object] | None = None) -> bool:
    """One envelope event and its audit row, in the caller's transaction; False if the key
    was recorded before."""
    key = f"envelope-{env.id}:{key}"
    if s.scalar(select(EnvelopeEvent.id).where(EnvelopeEvent.event_key == key)):
        return False
    actor = audit.resolved(s, actor)  # the event and the audit row name them alike
    now = dt.datetime.now(dt.UTC)
    s.add(EnvelopeEvent(event_key=key, envelope_id=env.id,
                        recipient_id=recipient.id if recipient else None, at=now, kind=kind,
                        actor=actor.label, ip=ip, user_agent=(user_agent or "")[:400] or None,
                        auth_method=auth_method, detail=detail or {}))
    audit.append(s, event_key=key, actor=actor, action=f"envelope.{kind}",
                 entity=entity("envelope", env.id), at=now,
                 data={"recipient": recipient.email if recipient else None, "ip": ip,
                       "user_agent": user_agent, "auth": auth_method, **(detail or {})})
    return True


def recipient_who(r: EnvelopeRecipient) -> Who:
    return Who.recipient(r.name, r.email, r.user_id)


@dataclass(frozen=True)
class Links:
    base_url: str

    def signer(self, token: str) -> str:
        return f"{self.base_url}/sign/{token}"

    def envelope(self, envelope_id: int) -> str:
        return f"{self.base_url}/envelopes/{envelope_id}"


class EnvelopeActivities:
    def __init__(self, sessions: sessionmaker[Session], mailer: Mailer, blobs: BlobStore,
                 pki: Pki, base_url: str, tsa_url: str = "",
                 departments: tuple[str, ...] = (),
                 seal_signer: Callable[[], Signer] | None = None,
                 convert_docx: Callable[[bytes, str], bytes] | None = None,
                 max_upload_bytes: int = 25 * 1024 * 1024, task_queue: str = "deals",
                 workflow_prefix: str = "") -> None:
        self._sessions = sessions
        # Where a won deal's renewal runs, and who we are on its contract.
        self._renewals = (task_queue, workflow_prefix, pki.org_name)
        self._mailer = mailer
        self._blobs = blobs
        self._pki = pki
        self._links = Links(base_url.rstrip("/"))
        self._timestamper = timestamper(pki, tsa_url)
        self._chain = pki.chain
        self._departments = departments
        # The organisation seal: the file key by default, or a PKCS#11 token (documents/hsm).
        self._seal_signer = seal_signer or (lambda: signing.signer_for(pki.seal, self._chain))
        self._convert_docx = convert_docx
        self._max_bytes = max_upload_bytes

    # ------------------------------------------------------------ preparation
    @activity.defn(name="prepare_envelope")
    def prepare_envelope(self, envelope_id: int) -> str:
        """The document ready to sign: a Word upload converted to PDF, checked and its fields
        placed; then every signer's field added, before the first signature. Returns the
        prepared document's hash. A document that can't be used fails for good
        (``DocumentRefused``, with the reason a person can act on)."""
        with heartbeating():
            return self._prepare(envelope_id)

    def _prepare(self, envelope_id: int) -> str:
        key = f"envelope-{envelope_id}:prepare"
        with self._sessions() as s:
            done = _applied(s, key)
            if done is not None:
                return done.output_sha256
            converted = _envelope(s, envelope_id).page_count > 0
        if not converted:
            self._convert(envelope_id)
        self._progress(envelope_id, "Adding the signature fields")
        with self._sessions() as s:
            env = _envelope(s, envelope_id)
            specs = [signing.FieldSpec(r.field_name, r.field_page or 0,
                                       (r.field_box[0], r.field_box[1], r.field_box[2],
                                        r.field_box[3]))
                     for r in env.recipients if r.role == "signer" and r.field_name
                     and r.field_box]
            source = env.original_sha256
        prepared = signing.prepare_fields(self._blobs.get(source), specs)
        sha = self._blobs.put(prepared)
        with self._sessions() as s:
            write_lock(s)
            env = _envelope(s, envelope_id)
            env.current_sha256 = sha
            env.progress = None
            if env.status == "preparing":
                env.status = "sent"
            s.add(SignatureApplication(idem_key=key, envelope_id=envelope_id,
                                       input_sha256=source, output_sha256=sha))
            audit.append(s, event_key=key, actor=Who.system("worker:prepare_envelope"),
                         action="envelope.prepared", entity=entity("envelope", envelope_id),
                         data={"document_before": source, "document_after": sha,
                               "fields": len(specs)})
            return self._commit_or_existing(s, key, sha)

    def _convert(self, envelope_id: int) -> None:
        """A Word upload becomes the envelope's PDF: converted by the warm LibreOffice (with
        heartbeats, so a dead worker's attempt is retried within seconds, not after the long
        conversion timeout), checked like any upload, and each signer's field placed."""
        with self._sessions() as s:
            env = _envelope(s, envelope_id)
            assert env.upload_sha256 is not None
            upload, name = env.upload_sha256, env.upload_name or env.document_name
            requests = {r.id: FieldRequest(r.name, r.anchor or "",
                                           None if r.field_page is None else r.field_page + 1,
                                           _box(r.field_box))
                        for r in env.recipients if r.role == "signer"}
        self._progress(envelope_id, "Converting the Word document to PDF")
        if self._convert_docx is None:
            raise ApplicationError("this worker cannot convert Word documents (no LibreOffice)",
                                   type="ConverterUnavailable")
        pdf_name = str(PurePath(safe_filename(name, "document.docx")).with_suffix(".pdf"))
        try:
            pdf = self._convert_docx(self._blobs.get(upload), name)
        except ConversionFailed as e:
            raise _refused(e.message) from None
        except ConverterUnavailable as e:  # an operator problem: retried until it's fixed
            raise ApplicationError(f"LibreOffice is not available: {e}",
                                   type="ConverterUnavailable") from None
        self._progress(envelope_id, "Checking the document and placing the fields")
        try:
            doc = accept_pdf(pdf, filename=pdf_name, max_bytes=self._max_bytes)
            anchors = (find_anchors(doc.data) if any(r.anchor for r in requests.values())
                       else [])
            placed = place_fields(requests, doc, anchors)
        except DocumentRefused as e:
            raise _refused(e.reason) from None
        except AnchorSearchFailed:
            raise _refused(f"{pdf_name}: the [[sign:…]] anchors could not be read; place the "
                           "signature fields by page and position instead") from None
        except PlacementError as e:
            raise _refused(str(e)) from None
        sha = self._blobs.put(doc.data)
        with self._sessions() as s:
            write_lock(s)
            env = _envelope(s, envelope_id)
            env.original_sha256 = env.current_sha256 = sha
            env.page_count, env.document_name = doc.page_count, pdf_name
            for r in env.recipients:
                if r.id in placed:
                    r.field_page, box = placed[r.id]
                    r.field_box, r.field_name = list(box), f"sig-r{r.id}"
            add_event(s, env, "converted", Who.system("worker:prepare_envelope"),
                      key="converted",
                      detail={"document": pdf_name, "sha256": sha, "pages": doc.page_count,
                              "from": name, "from_sha256": upload})
            s.commit()

    def _progress(self, envelope_id: int, text: str) -> None:
        with self._sessions() as s:
            s.execute(update(Envelope).where(Envelope.id == envelope_id,
                                             Envelope.status == "preparing")
                      .values(progress=text))
            s.commit()

    # ------------------------------------------------------------ invitations
    @activity.defn(name="invite_recipients")
    def invite_recipients(self, inp: InviteInput) -> None:
        queued: list[int] = []
        with self._sessions() as s:
            write_lock(s)
            env = _envelope(s, inp.envelope_id)
            now = dt.datetime.now(dt.UTC)
            for r in env.recipients:
                if r.id not in inp.recipient_ids:
                    continue
                mail_key = f"envelope-{env.id}:{r.id}:{inp.round_key}"
                earlier = s.scalar(select(OutboxMessage.id).where(
                    OutboxMessage.message_key == mail_key))
                if earlier is not None:
                    # Queued by an earlier attempt, which may have died (or SMTP failed)
                    # before delivering it: deliver it now (a no-op once it was sent).
                    queued.append(earlier)
                    continue
                if r.user_id is not None:
                    link = self._links.envelope(env.id)  # internal: signs from the inbox
                else:
                    token = secrets.token_urlsafe(32)  # 256 bits; only the hash is kept
                    r.link_token_hash = token_hash(token)
                    r.link_expires_at = env.expires_at
                    link = self._links.signer(token)
                if r.status == "created":
                    r.status = "sent"
                r.sent_at = r.sent_at or now
                verb = {"invite": "Please sign", "reminder": "Reminder: please sign",
                        "resend": "Please sign"}[inp.kind]
                body = (f"{env.sender.name} sent you {env.title!r} to "
                        f"{'approve' if r.role == 'approver' else 'sign'}.\n\n"
                        + (f"{env.message}\n\n" if env.message else "")
                        + f"Open it here: {link}\n\nThe link is personal to you and "
                        f"expires on {env.expires_at:%Y-%m-%d %H:%M} UTC.")
                msg = OutboxMessage(message_key=mail_key, to_addr=r.email,
                                    subject=f"{verb}: {env.title}", body=body)
                s.add(msg)
                s.flush()
                queued.append(msg.id)
                add_event(s, env, "sent" if inp.kind == "invite" else inp.kind,
                          Who.system("worker:invite_recipients"),
                          key=f"{r.id}:{inp.round_key}", recipient=r,
                          detail={"to": r.email})
            s.commit()
        for mid in queued:
            self._mailer.deliver(mid)

    # ------------------------------------------------------------ signing
    @activity.defn(name="apply_signature")
    def apply_signature(self, inp: ApplySignatureInput) -> str:
        key = f"envelope-{inp.envelope_id}:sign:{inp.recipient_id}:{inp.input_sha256}"
        with self._sessions() as s:
            done = _applied(s, key)
            if done is not None:
                return done.output_sha256
            env = _envelope(s, inp.envelope_id)
            r = _recipient(env, inp.recipient_id)
            name, email, field = r.name, r.email, r.field_name
        if field is None:
            raise RuntimeError(f"recipient {inp.recipient_id} has no signature field")
        activity.heartbeat()  # alive between steps: a dead worker shows in seconds
        identity = self._pki.issue_signer(name, email)
        activity.heartbeat()
        signed = signing.sign_field(
            self._blobs.get(inp.input_sha256),
            signing.SignatureSpec(field, reason=f"Typed name: {inp.typed_name.strip()}",
                                  location=inp.client.ip, certify=inp.certify,
                                  drawing=self._blobs.get(inp.drawn_sha256)
                                  if inp.drawn_sha256 else None),
            signing.signer_for(identity, self._chain), self._timestamper)
        sha = self._blobs.put(signed)
        activity.heartbeat()
        with self._sessions() as s:
            write_lock(s)
            env = _envelope(s, inp.envelope_id)
            r = _recipient(env, inp.recipient_id)
            env.current_sha256 = sha
            r.status, r.signed_at, r.typed_name = "signed", dt.datetime.now(dt.UTC), \
                inp.typed_name.strip()
            s.add(SignatureApplication(idem_key=key, envelope_id=env.id, recipient_id=r.id,
                                       input_sha256=inp.input_sha256, output_sha256=sha))
            add_event(s, env, "signed", recipient_who(r), key=f"{r.id}:signed", recipient=r,
                      ip=inp.client.ip, user_agent=inp.client.user_agent,
                      auth_method=inp.client.auth_method,
                      detail={"typed_name": inp.typed_name.strip(),
                              "drawn_signature_sha256": inp.drawn_sha256 or None,
                              "certificate_serial": f"{identity.cert.serial_number:x}",
                              "document_before": inp.input_sha256, "document_after": sha,
                              "certified": inp.certify})
            return self._commit_or_existing(s, key, sha)

    @activity.defn(name="record_approval")
    def record_approval(self, inp: ApplySignatureInput) -> None:
        with self._sessions() as s:
            write_lock(s)
            env = _envelope(s, inp.envelope_id)
            r = _recipient(env, inp.recipient_id)
            if add_event(s, env, "approved", recipient_who(r), key=f"{r.id}:approved",
                         recipient=r,
                         ip=inp.client.ip, user_agent=inp.client.user_agent,
                         auth_method=inp.client.auth_method,
                         detail={"typed_name": inp.typed_name.strip(),
                                 "drawn_signature_sha256": inp.drawn_sha256 or None}):
                r.status, r.signed_at = "signed", dt.datetime.now(dt.UTC)
                r.typed_name = inp.typed_name.strip()
            s.commit()

    # ------------------------------------------------------------ sealing
    @activity.defn(name="seal_envelope")
    def seal_envelope(self, envelope_id: int, document_sha256: str) -> SealResult:
        """Document timestamp + validation data, then the sealed certificate of completion."""
        key = f"envelope-{envelope_id}:seal:{document_sha256}"
        with self._sessions() as s:
            done = _applied(s, key)
            if done is not None:
                env = _envelope(s, envelope_id)
                assert env.certificate_sha256 is not None
                return SealResult(done.output_sha256, env.certificate_sha256)
        certs, crls = self._pki.validation_material()
        sealed = signing.seal(self._blobs.get(document_sha256), certs=certs, crls=crls,
                              timestamper=self._timestamper)
        final_sha = self._blobs.put(sealed)
        # Whole seconds, rounded up: an envelope signed within the second it was created
        # must not complete before it began.
        now = dt.datetime.now(dt.UTC)
        completed_at = now.replace(microsecond=0) + dt.timedelta(seconds=bool(now.microsecond))
        with self._sessions() as s:
            record = self._completion_record(s, _envelope(s, envelope_id), final_sha,
                                             completed_at)
        certificate = signing.seal_certificate(render_certificate(record), self._seal_signer(),
                                               self._timestamper)
        cert_sha = self._blobs.put(certificate)
        with self._sessions() as s:
            write_lock(s)
            env = _envelope(s, envelope_id)
            env.final_sha256, env.certificate_sha256 = final_sha, cert_sha
            s.add(SignatureApplication(idem_key=key, envelope_id=envelope_id,
                                       input_sha256=document_sha256, output_sha256=final_sha))
            add_event(s, env, "sealed", Who.system("worker:seal_envelope"), key="sealed",
                      detail={"document_before": document_sha256, "document_after": final_sha,
                              "certificate": cert_sha})
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                env = _envelope(s, envelope_id)
                assert env.final_sha256 and env.certificate_sha256
                return SealResult(env.final_sha256, env.certificate_sha256)
        return SealResult(final_sha, cert_sha)

    def _completion_record(self, s: Session, env: Envelope, final_sha: str,
                           completed_at: dt.datetime) -> CompletionRecord:
        events = s.scalars(select(EnvelopeEvent).where(EnvelopeEvent.envelope_id == env.id)
                           .order_by(EnvelopeEvent.id)).all()
        by_id = {r.id: r for r in env.recipients}
        lines = []
        for e in events:
            r = by_id.get(e.recipient_id) if e.recipient_id else None
            detail = e.detail or {}
            words = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in detail.items()
                              if v not in (None, "", False))
            lines.append(EventLine(
                at=e.at, actor=r.name if r else ("System" if is_system_label(e.actor)
                                                 else e.actor),
                action=EVENT_WORDS.get(e.kind, e.kind), actor_email=r.email if r else "",
                ip_address=e.ip or "", user_agent=e.user_agent or "",
                auth_method=e.auth_method if e.auth_method in  # type: ignore[arg-type]
                ("none", "access_code", "email_otp") else None, detail=words))
        recipients = tuple(RecipientLine(
            name=r.name, email=r.email, role=r.role,  # type: ignore[arg-type]
            routing_order=r.routing_order, auth_method=r.auth_method,  # type: ignore[arg-type]
            status=("approved" if r.role == "approver" else "signed") if r.status == "signed"
            else ("declined" if r.status == "declined" else
                  "delivered" if r.viewed_at else "sent"),
            status_at=r.signed_at or r.declined_at or r.viewed_at or r.sent_at)
            for r in env.recipients)
        return CompletionRecord(
            envelope_id=f"envelope-{env.id}", title=env.title, sender_name=env.sender.name,
            sender_email=env.sender.email, created_at=env.created_at,
            completed_at=completed_at,
            documents=(DocumentLine(env.document_name, env.page_count, env.original_sha256,
                                    final_sha),),
            recipients=recipients, events=tuple(lines), issuer=self._pki.org_name)

    # ------------------------------------------------------------ outcomes
    @activity.defn(name="record_outcome")
    def record_outcome(self, inp: OutcomeInput) -> BillingInput | None:
        """The envelope's end (completed, declined, voided, expired): status, events, audit
        and the mail that goes with it, once. A completed envelope sent for an approved quote
        wins the deal in the same transaction; the billing to start is returned (again on a
        retry: starting it twice is harmless)."""
        queued: list[int] = []
        with self._sessions() as s:
            write_lock(s)
            env = _envelope(s, inp.envelope_id)
            r = _recipient(env, inp.recipient_id) if inp.recipient_id else None
            if not add_event(s, env, inp.status, _outcome_who(inp, r),
                             key=f"outcome:{inp.status}", recipient=r,
                             detail={"reason": inp.reason or None}):
                won = _won_deal(s, env, *self._renewals) if inp.status == "completed" else None
                # An earlier attempt committed the outcome and its mail, then died (or SMTP
                # failed) before delivering all of it: deliver what is still queued.
                queued = list(s.scalars(select(OutboxMessage.id).where(
                    OutboxMessage.message_key.startswith(f"envelope-{env.id}:outcome:"),
                    OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id)))
                s.commit()
                for mid in queued:
                    self._mailer.deliver(mid)
                return won
            now = dt.datetime.now(dt.UTC)
            env.status = inp.status
            env.completed_at = now
            env.ended_reason = inp.reason or None
            if r is not None and inp.status == "declined":
                r.status, r.declined_at, r.decline_reason = "declined", now, inp.reason
            for key, to, subject, body, files in self._outcome_mail(env, inp):
                msg = OutboxMessage(message_key=key, to_addr=to, subject=subject, body=body,
                                    attachments=files)
                s.add(msg)
                s.flush()
                queued.append(msg.id)
            won = _won_deal(s, env, *self._renewals) if inp.status == "completed" else None
            s.commit()
        crash_point("record_outcome:after-commit")
        for mid in queued:
            self._mailer.deliver(mid)
        return won

    def _outcome_mail(self, env: Envelope, inp: OutcomeInput) -> list[Mail]:
        base = f"envelope-{env.id}:outcome"
        link = self._links.envelope(env.id)
        if inp.status == "completed":
            files: list[object] = [
                {"sha256": inp.final_sha256,
                 "filename": safe_filename(f"{PurePath(env.document_name).stem} (signed).pdf"),
                 "content_type": "application/pdf"},
                {"sha256": inp.certificate_sha256, "filename": "Certificate of completion.pdf",
                 "content_type": "application/pdf"}]
            to = sorted({r.email for r in env.recipients} | {env.sender.email}
                        | set(self._departments))
            body = (f"{env.title!r} is signed by everyone. The signed document and its "
                    "certificate of completion are attached.")
            return [(f"{base}:{addr}", addr, f"Completed: {env.title}", body, files)
                    for addr in to]
        words = {"declined": f"was declined. Reason: {inp.reason}",
                 "voided": f"was voided by the sender. Reason: {inp.reason}",
                 "expired": "expired before everyone signed.",
                 "failed": f"was not sent: its document could not be prepared. {inp.reason}"
                 }[inp.status]
        mail: list[Mail] = [(f"{base}:{env.sender.email}", env.sender.email,
                             f"{inp.status.capitalize()}: {env.title}",
                             f"{env.title!r} {words}\n\n{link}", [])]
        if inp.status == "voided":
            mail += [(f"{base}:{r.email}", r.email, f"Voided: {env.title}",
                      f"{env.title!r} {words} You no longer need to act on it.", [])
                     for r in env.recipients if r.sent_at is not None]
        return mail

    def _commit_or_existing(self, s: Session, key: str, sha: str) -> str:
        try:
            s.commit()
        except IntegrityError:  # a concurrent attempt committed first: theirs stands
            s.rollback()
            done = _applied(s, key)
            assert done is not None
            return done.output_sha256
        return sha


def _outcome_who(inp: OutcomeInput, r: EnvelopeRecipient | None) -> Who:
    """Who ended the envelope: the recipient who declined, the user who voided it (the
    workflow names them ``Name (user 7)``), or the envelope's own course (completed, expired,
    failed)."""
    if r is not None:
        return recipient_who(r)
    if inp.actor and not is_system_label(inp.actor):
        return Who.parse(inp.actor)
    return Who.system("worker:record_outcome")


def _refused(reason: str) -> ApplicationError:
    return ApplicationError(reason, type=DOCUMENT_REFUSED, non_retryable=True)


def _box(value: list[object] | None) -> tuple[int, int, int, int] | None:
    if not value:
        return None
    x1, y1, x2, y2 = (int(str(v)) for v in value)
    return x1, y1, x2, y2


@contextlib.contextmanager
def heartbeating(every: float = 2.0) -> Iterator[None]:
    """Heartbeat from a helper thread while the activity's thread is busy in one long call."""
    stop = threading.Event()
    context = contextvars.copy_context()

    def beat() -> None:
        while not stop.wait(every):
            context.run(activity.heartbeat)

    helper = threading.Thread(target=beat, name="heartbeat", daemon=True)
    helper.start()
    try:
        yield
    finally:
        stop.set()
        helper.join()


def _applied(s: Session, key: str) -> SignatureApplication | None:
    """An earlier attempt's output for this idempotency key, if it committed."""
    return s.scalar(select(SignatureApplication).where(SignatureApplication.idem_key == key))


def _envelope(s: Session, envelope_id: int) -> Envelope:
    env = s.get(Envelope, envelope_id)
    if env is None:  # its creating transaction never committed: nothing to retry for
        raise ApplicationError(f"no envelope {envelope_id} in the store", type="EnvelopeMissing",
                               non_retryable=True)
    return env


def _recipient(env: Envelope, recipient_id: int) -> EnvelopeRecipient:
    for r in env.recipients:
        if r.id == recipient_id:
            return r
    raise LookupError(f"envelope {env.id} has no recipient {recipient_id}")


def _won_deal(s: Session, env: Envelope, task_queue: str, prefix: str,
              provider: str) -> BillingInput | None:
    """The signed envelope's quote, won (if it was approved), its contract and subscription
    (``provider``: our organisation's name), and its billing plan."""
    quote = s.get(Quote, env.quote_id) if env.quote_id else None
    if quote is None or quote.status not in ("approved", "won"):
        return None
    who = Who.system("worker:record_outcome")
    installments = invoicing.win(s, quote, who, via=entity("envelope", env.id),
                                 signed=env.final_sha256)
    signers = [{"name": r.name, "email": r.email} for r in env.recipients if r.status == "signed"]
    subscribe(s, quote, who, task_queue=task_queue, prefix=prefix,
              won_on=(quote.won_at or dt.datetime.now(dt.UTC)).date(), envelope_id=env.id,
              sealed_sha256=env.final_sha256, template=env.contract_template,
              provider=provider, signers=signers)
    if quote.deal_id is not None:
        tell_closed(s, quote.deal_id, "won", "", task_queue=task_queue, prefix=prefix)
    return BillingInput(quote.id, [i.issue_on.isoformat() for i in installments])
