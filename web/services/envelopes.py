"""Envelopes: creating one (checking the document, placing fields, starting its workflow) and
acting on it through EnvelopeWorkflow's Updates."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Integer, Select, bindparam, or_, select
from sqlalchemy.orm import Session
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.envelopes import add_event
from dealdesk.faults import crash_point
from dealdesk.settings import Settings
from documents.convert import ConversionFailed, check_docx
from documents.filenames import safe_filename
from documents.intake import AcceptedPdf, AnchorSearchFailed, DocumentRefused, check_upload
from documents.placement import FieldRequest, PlacementError, place_fields
from store import idempotency, starts
from store.blobs import BlobStore
from store.commerce import QuoteDocumentRow
from store.db import in_session, write_lock
from store.deals import step_parent
from store.idempotency import request_hash
from store.models import Envelope, EnvelopeRecipient, Quote, User
from store.who import Who
from web.deps import off_loop
from web.errors import (
    AppError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    TooLarge,
    Unavailable,
)
from web.services.quotes import READ_ALL as QUOTE_READERS
from web.services.refusals import UPDATE_TIMEOUT, temporal_unavailable
from workflows.envelope import (
    ALREADY_DONE,
    ENVELOPE_CLOSED,
    NOT_YOUR_TURN,
    REASON_REQUIRED,
    EnvelopeWorkflow,
)
from workflows.envelope_messages import (
    Client as ClientInfo,
)
from workflows.envelope_messages import (
    DeclineInput,
    EnvelopeInput,
    RecipientSpec,
    SignInput,
    SignResult,
    VoidInput,
)

ROLES = ("signer", "approver", "cc")
AUTH_METHODS = ("none", "access_code", "email_otp")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class RecipientIn:
    name: str
    email: str
    role: str = "signer"
    routing_order: int = 1
    auth_method: str = "none"
    access_code: str = ""
    user_id: int | None = None
    """An internal user (e.g. the CFO countersigning) signs from their inbox, no link."""
    anchor: str = ""
    """Label of a ``[[sign:LABEL]]`` text in the document where the field goes."""
    page: int | None = None
    """1-based page for an explicit placement (with ``box``)."""
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class EnvelopeIn:
    title: str
    document_name: str
    document: bytes
    recipients: list[RecipientIn]
    message: str = ""
    expires_in_days: int = 30
    remind_every_days: float | None = 3
    quote_id: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    """The client's key for this create: a retry with the same key makes nothing new."""
    deal_id: int | None = None
    """The deal it is sent for (the deal page lists it)."""
    rendered_from_quote: bool = False
    """The document is one this app rendered from ``quote_id`` (a contract,
    web.services.contracts), not an upload: then it stands for the quote instead of the
    quote's generated PDF. Set by that use case only, never from a request."""
    request_digest: str | None = None
    """What the idempotency key stands for, when not this exact document and recipients (a
    contract is rendered anew on each try, its request is the same)."""
    contract_template: str | None = None
    """The contract template the document was rendered from (web.services.contracts only);
    the contract its signing records names it."""


def workflow_id(settings: Settings, envelope_id: int) -> str:
    return f"{settings.workflow_prefix}envelope-{envelope_id}"


def _check(inp: EnvelopeIn) -> None:
    if not inp.title.strip():
        raise Invalid("give the envelope a title", field="title")
    if len(inp.title) > 200:
        raise Invalid("the title is longer than 200 characters", field="title")
    if not inp.recipients:
        raise Invalid("add at least one recipient", field="recipients")
    if not any(r.role in ("signer", "approver") for r in inp.recipients):
        raise Invalid("add at least one signer or approver", field="recipients")
    if not 1 <= inp.expires_in_days <= 365:
        raise Invalid("expiry must be between 1 and 365 days", field="expires_in_days")
    for n, r in enumerate(inp.recipients, start=1):
        where = f"recipient {n}"
        if not r.name.strip():
            raise Invalid(f"{where}: enter a name", field=f"recipients.{n}.name")
        if not _EMAIL.match(r.email.strip()):
            raise Invalid(f"{where}: {r.email!r} is not an email address",
                          field=f"recipients.{n}.email")
        if r.role not in ROLES:
            raise Invalid(f"{where}: role must be one of {', '.join(ROLES)}",
                          field=f"recipients.{n}.role")
        if not 1 <= r.routing_order <= 20:
            raise Invalid(f"{where}: routing order must be 1 to 20",
                          field=f"recipients.{n}.routing_order")
        if r.auth_method not in AUTH_METHODS:
            raise Invalid(f"{where}: authentication must be one of {', '.join(AUTH_METHODS)}",
                          field=f"recipients.{n}.auth_method")
        if r.auth_method == "access_code" and len(r.access_code.strip()) < 4:
            raise Invalid(f"{where}: an access code needs at least 4 characters",
                          field=f"recipients.{n}.access_code")
    emails = [r.email.strip().lower() for r in inp.recipients if r.role != "cc"]
    if len(emails) != len(set(emails)):
        raise Invalid("the same email appears twice among signers and approvers",
                      field="recipients")


def _requests(inp: EnvelopeIn) -> dict[int, FieldRequest]:
    return {n: FieldRequest(r.name, r.anchor, r.page, r.box)
            for n, r in enumerate(inp.recipients) if r.role == "signer"}


def _is_docx(data: bytes, name: str) -> bool:
    """A Word document (a zip that holds one), from the bytes: a name can lie. Anything else
    goes to the PDF intake, whose refusal says what the file is."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        check_docx(data, name)
    except ConversionFailed as e:
        raise Invalid(e.message, field="document") from None
    return True


@dataclass(frozen=True)
class _Checked:
    """An upload checked in the request: a PDF accepted with its fields placed, or a Word
    document its workflow will convert (then check and place)."""

    name: str
    upload_sha256: str
    pdf: AcceptedPdf | None
    pdf_sha256: str | None
    placements: dict[int, tuple[int, tuple[int, int, int, int]]]
    own_fields: dict[int, str] = field(default_factory=dict)
    """Signer index → the (certified) document's own empty field they sign in."""


def _check_document(inp: EnvelopeIn, blobs: BlobStore, max_bytes: int) -> _Checked:
    """Blocking (files, hashing; the PDF checks run in a child process): call it on a worker
    thread."""
    name = safe_filename(inp.document_name, "document.pdf")
    if not inp.document:
        raise Invalid("choose the document to send (a PDF or a Word .docx file)",
                      field="document")
    if len(inp.document) > max_bytes:
        raise TooLarge(f"{name} is larger than {max_bytes // (1024 * 1024)} MB: send a "
                       "smaller file", field="document")
    if _is_docx(inp.document, name):
        # Conversion takes seconds to minutes: the envelope's workflow does it ("preparing").
        return _Checked(name, blobs.put(inp.document), None, None, {})
    try:
        checked = check_upload(inp.document, filename=name, max_bytes=max_bytes,
                               with_anchors=any(r.anchor for r in inp.recipients))
    except DocumentRefused as e:
        raise Invalid(e.reason, field="document") from None
    except AnchorSearchFailed:
        raise Invalid(f"{name}: the [[sign:…]] anchors could not be read; place the "
                      "signature fields by page and position instead", field="document") \
            from None
    doc, anchors = checked.accepted, list(checked.anchors)
    if doc.certification is not None:
        return _Checked(name, blobs.put(inp.document), doc, blobs.put(doc.data), {},
                        _own_fields(inp, doc, name))
    try:
        placements = place_fields(_requests(inp), doc, anchors)
    except PlacementError as e:
        raise Invalid(str(e), field="recipients") from None
    return _Checked(name, blobs.put(inp.document), doc, blobs.put(doc.data), placements)


def _own_fields(inp: EnvelopeIn, doc: AcceptedPdf, name: str) -> dict[int, str]:
    """A certified upload allows signing its empty fields but no new field (validators flag
    one as a change the certification forbids): the signers take its own empty fields, in
    routing order."""
    signers = sorted(_requests(inp), key=lambda n: inp.recipients[n].routing_order)
    empty = list(doc.empty_signature_fields)
    if len(empty) < len(signers):
        raise Invalid(f"{name} is certified by its author, which allows signing only in its "
                      f"own signature fields: it has {len(empty)} empty field(s) for "
                      f"{len(signers)} signer(s). Ask the author for a copy with a field per "
                      "signer, or an uncertified copy", field="document")
    return dict(zip(signers, empty, strict=False))


def sendable_quote(session: Session, sender: User, quote_id: int) -> Quote:
    """The quote, if this sender may send it for signature now: approved, and theirs (or
    they are the deal desk)."""
    quote = session.get(Quote, quote_id)
    if quote is None or not (quote.owner_id == sender.id
                             or sender.roles.intersection(QUOTE_READERS)):
        raise Invalid(f"no quote {quote_id}: link an approved quote of yours, or send the "
                      "document without linking a quote", field="quote_id")
    if not (quote.owner_id == sender.id or "deal_desk" in sender.roles):
        raise Forbidden(f"quote {quote_id} isn't yours to send for signature: only its owner "
                        "or the deal desk can", field="quote_id")
    if quote.status != "approved":
        raise Conflict(f"only an approved quote goes out for signature; quote {quote_id} is "
                       f"{quote.status.replace('_', ' ')}", field="quote_id")
    return quote


def _check_quote_link(session: Session, sender: User, quote_id: int,
                      checked: _Checked, rendered: bool = False) -> Quote:
    """An envelope wins a quote's deal when signed, so only the quote's own generated
    document (or a contract rendered from it), sent by its owner (or the deal desk) once it
    is approved, may be linked."""
    quote = sendable_quote(session, sender, quote_id)
    if rendered:  # made from the quote in this request (web.services.contracts)
        return quote
    doc = session.scalar(select(QuoteDocumentRow).where(
        QuoteDocumentRow.quote_id == quote.id, QuoteDocumentRow.version == quote.version)
        .order_by(QuoteDocumentRow.id.desc()).limit(1))
    if doc is None:
        raise Conflict(f"generate the document of quote Q-{quote.id} v{quote.version} first",
                       field="quote_id")
    if checked.upload_sha256 != doc.pdf_sha256:
        raise Invalid(f"this file is not the generated document of quote Q-{quote.id} "
                      f"v{quote.version}; send that PDF unchanged (download it from the quote "
                      "page), or send the file without linking the quote", field="document")
    return quote


def _write_envelope(session: Session, settings: Settings, sender: User, inp: EnvelopeIn,
                    checked: _Checked) -> Envelope:
    """The envelope, its recipients, its ``created`` event and its workflow's start: one
    transaction (a retry with the same idempotency key returns the first envelope)."""
    write_lock(session)
    digest = inp.request_digest or request_hash(
        checked.upload_sha256, repr(inp.recipients), inp.title, inp.message,
        str(inp.quote_id), str(inp.expires_in_days))
    try:
        earlier = idempotency.earlier(session, sender.id, "envelope", inp.idempotency_key,
                                      digest)
    except idempotency.KeyReused as e:
        raise Invalid(str(e), field="Idempotency-Key") from None
    if earlier is not None:
        return get_envelope(session, earlier)
    if inp.quote_id is not None:
        _check_quote_link(session, sender, inp.quote_id, checked, inp.rendered_from_quote)
    now = dt.datetime.now(dt.UTC)
    doc = checked.pdf
    stored = checked.pdf_sha256 or checked.upload_sha256
    env = Envelope(workflow_id="", title=inp.title.strip(), message=inp.message.strip(),
                   sender_id=sender.id, quote_id=inp.quote_id, deal_id=inp.deal_id,
                   contract_template=inp.contract_template, status="preparing",
                   document_name=checked.name, page_count=doc.page_count if doc else 0,
                   original_sha256=stored, current_sha256=stored, created_at=now,
                   upload_sha256=checked.upload_sha256, upload_name=checked.name,
                   progress=("Waiting to convert the Word document" if doc is None
                             else "Adding the signature fields"),
                   expires_at=now + dt.timedelta(days=inp.expires_in_days))
    session.add(env)
    session.flush()
    env.workflow_id = workflow_id(settings, env.id)
    rows = []
    for n, r in enumerate(inp.recipients):
        placed = checked.placements.get(n)
        if doc is None and r.page is not None and r.box is not None:
            placed = (r.page - 1, r.box)  # a request, checked once the document is converted
        row = EnvelopeRecipient(
            envelope_id=env.id, name=r.name.strip(), email=r.email.strip(), role=r.role,
            routing_order=r.routing_order, auth_method=r.auth_method,
            access_code_hash=(_hasher.hash(r.access_code.strip())
                              if r.auth_method == "access_code" else None),
            user_id=r.user_id, status="created", anchor=r.anchor or None,
            field_name=checked.own_fields.get(n), field_page=placed[0] if placed else None,
            field_box=list(placed[1]) if placed else None)
        session.add(row)
        rows.append(row)
    session.flush()
    for row in rows:
        if row.field_page is not None and doc is not None:
            row.field_name = f"sig-r{row.id}"
    add_event(session, env, "created", Who.user(sender), key="created",
              detail={"document": checked.name, "sha256": stored,
                      "uploaded_sha256": checked.upload_sha256,
                      "pages": doc.page_count if doc else None, "recipients": len(rows),
                      "notes": " ".join(doc.notes) if doc and doc.notes else None})
    remind = int(inp.remind_every_days * 86400) if inp.remind_every_days else None
    spec = EnvelopeInput(
        envelope_id=env.id, title=env.title, sender_id=sender.id, sender_name=sender.name,
        recipients=[RecipientSpec(r.id, r.name, r.email, r.role,  # type: ignore[arg-type]
                                  r.routing_order, r.auth_method,  # type: ignore[arg-type]
                                  r.user_id) for r in rows],
        expires_at=env.expires_at, reminder_every_s=remind,
        webhooks=[f"webhook-{n}" for n in range(1, len(settings.webhook_urls) + 1)],
        # Certifying is for a document's first signature only; an upload already signed
        # elsewhere gets approval signatures.
        certify_first=doc is None or doc.signature_count == 0)
    starts.enqueue(session, env.workflow_id, EnvelopeWorkflow.__name__, spec,
                   settings.task_queue,
                   parent=step_parent(session, settings.workflow_prefix, env.deal_id,
                                      env.quote_id))
    idempotency.remember(session, sender.id, "envelope", inp.idempotency_key, digest, env.id)
    return env


async def create_envelope(session: Session, client: Client | None, settings: Settings,
                          blobs: BlobStore, sender: User, inp: EnvelopeIn) -> Envelope:
    """Check the request and the document, write the envelope (status "preparing") and start
    its workflow, which converts a Word upload, adds the fields and invites the first
    recipients. Answers in well under a second whatever the document (conversion is the
    workflow's); a refused PDF is a 422 and nothing is written. The blob store is
    content-addressed: a file stored for a request that then fails is harmless."""
    _check(inp)
    checked = await off_loop(_check_document, inp, blobs, settings.max_upload_mb * 1024 * 1024)
    env = await in_session(session, _write_envelope, settings, sender, inp, checked)
    crash_point("envelope:after-commit")
    await starts.start_now(client, session, env.workflow_id)
    return env


# ------------------------------------------------------------------ who sees what
CREATORS = ("rep", "sales_manager", "deal_desk", "legal", "finance", "cfo", "admin")
READ_ALL = ("deal_desk", "legal", "finance", "cfo", "auditor", "admin")
ACTORS = ("legal", "admin")


def may_view(env: Envelope, user: User) -> bool:
    return (env.sender_id == user.id or any(r.user_id == user.id for r in env.recipients)
            or bool(user.roles.intersection(READ_ALL)))


def may_act(env: Envelope, user: User) -> bool:
    return env.sender_id == user.id or bool(user.roles.intersection(ACTORS))


def visible(q: Select[Any], user: User) -> Select[Any]:
    if user.roles.intersection(READ_ALL):
        return q
    mine = select(EnvelopeRecipient.envelope_id).where(EnvelopeRecipient.user_id == user.id)
    return q.where(or_(Envelope.sender_id == user.id, Envelope.id.in_(mine)))


def visible_envelope(session: Session, envelope_id: int, user: User) -> Envelope:
    env = session.get(Envelope, envelope_id)
    if env is None or not may_view(env, user):
        raise NotFound(f"no envelope {envelope_id}")
    return env


def actable_envelope(session: Session, envelope_id: int, user: User) -> Envelope:
    env = visible_envelope(session, envelope_id, user)
    if not may_act(env, user):
        raise Forbidden("only the sender, legal or an admin can remind or void an envelope")
    return env


# ------------------------------------------------------------------ acting on an envelope
def get_envelope(session: Session, envelope_id: int) -> Envelope:
    env = session.get(Envelope, envelope_id)
    if env is None:
        raise NotFound(f"no envelope {envelope_id}")
    return env


def _refusal(e: WorkflowUpdateFailedError) -> AppError:
    cause = e.cause
    if isinstance(cause, ApplicationError):
        message = cause.message
        if cause.type == NOT_YOUR_TURN:
            return Conflict(message[:1].upper() + message[1:])
        if cause.type == ENVELOPE_CLOSED:
            return Gone(message[:1].upper() + message[1:])
        if cause.type == ALREADY_DONE:
            return Conflict(message[:1].upper() + message[1:])
        if cause.type == REASON_REQUIRED:
            return Invalid(message[:1].upper() + message[1:])
        return Conflict(message)
    return Conflict("the envelope refused this action")


def _storable(text: str, field: str) -> None:
    """Text bound for the workflow, and from there for the store, which can't hold a NUL."""
    if "\x00" in text:
        raise Invalid(f"{field.replace('_', ' ')}: remove the NUL character (\\u0000)",
                      field=field)


async def _update(client: Client, env: Envelope, update: object, arg: object | None) -> object:
    handle = client.get_workflow_handle(env.workflow_id)
    try:
        if arg is None:
            return await handle.execute_update(  # type: ignore[call-overload]
                update, rpc_timeout=UPDATE_TIMEOUT)
        return await handle.execute_update(  # type: ignore[call-overload]
            update, arg, rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as e:
        raise _refusal(e) from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise Gone(f"this envelope is {env.status}") from None
        raise temporal_unavailable(e) from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise Unavailable("the signing service did not answer in time; reload in a moment "
                          "to see whether it went through") from None


async def sign(client: Client, env: Envelope, recipient: EnvelopeRecipient, typed_name: str,
               info: ClientInfo, drawn_sha256: str = "") -> SignResult:
    if not typed_name.strip():
        raise Invalid("type your name to sign", field="typed_name")
    if len(typed_name) > 200:
        raise Invalid("the name is longer than 200 characters", field="typed_name")
    _storable(typed_name, "typed_name")
    result = await _update(client, env, EnvelopeWorkflow.sign,
                           SignInput(recipient.id, typed_name.strip(), info, drawn_sha256))
    assert isinstance(result, SignResult)
    return result


async def decline(client: Client, env: Envelope, recipient: EnvelopeRecipient, reason: str,
                  info: ClientInfo) -> SignResult:
    if not reason.strip():
        raise Invalid("a reason is required to decline", field="reason")
    _storable(reason, "reason")
    result = await _update(client, env, EnvelopeWorkflow.decline,
                           DeclineInput(recipient.id, reason.strip()[:2000], info))
    assert isinstance(result, SignResult)
    return result


async def void(client: Client, env: Envelope, user: User, reason: str) -> None:
    if not reason.strip():
        raise Invalid("a reason is required to void an envelope", field="reason")
    _storable(reason, "reason")
    await _update(client, env, EnvelopeWorkflow.void, VoidInput(user.id, user.name,
                                                                reason.strip()[:2000]))


async def remind(client: Client, env: Envelope) -> int:
    result = await _update(client, env, EnvelopeWorkflow.remind, None)
    assert isinstance(result, int)
    return result


# Built once: the inbox asks on every load (building it cost about as much as running it).
_AWAITING_SIGNATURE = (
    select(EnvelopeRecipient).join(Envelope, Envelope.id == EnvelopeRecipient.envelope_id)
    .where(EnvelopeRecipient.user_id == bindparam("user_id", type_=Integer),
           Envelope.status == "sent", EnvelopeRecipient.status.in_(("sent", "viewed")))
    .order_by(EnvelopeRecipient.sent_at.asc()))


def awaiting_signature(session: Session, user: User) -> list[EnvelopeRecipient]:
    """Envelopes this internal user must countersign now (their inbox lists them)."""
    return list(session.scalars(_AWAITING_SIGNATURE, {"user_id": user.id}))


def waiting_recipients(session: Session) -> list[EnvelopeRecipient]:
    """Everyone whose turn it is, longest waiting first (the "who hasn't signed" report)."""
    return list(session.scalars(
        select(EnvelopeRecipient).join(Envelope, Envelope.id == EnvelopeRecipient.envelope_id)
        .where(Envelope.status == "sent", EnvelopeRecipient.status.in_(("sent", "viewed")),
               EnvelopeRecipient.role != "cc")
        .order_by(EnvelopeRecipient.sent_at.asc())))
