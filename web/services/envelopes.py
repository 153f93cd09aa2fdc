"""Envelopes: creating one (checking the document, placing fields, starting its workflow) and
acting on it through EnvelopeWorkflow's Updates."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.envelopes import add_event
from dealdesk.settings import Settings
from documents.convert import ConversionFailed, ConverterUnavailable
from documents.intake import (
    AcceptedPdf,
    Anchor,
    AnchorSearchFailed,
    DocumentRefused,
    accept_pdf,
    find_anchors,
)
from store.blobs import BlobStore
from store.db import write_lock
from store.models import Envelope, EnvelopeRecipient, User
from web.errors import AppError, Conflict, Forbidden, Gone, Invalid, NotFound, Unavailable
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
FIELD_W, FIELD_H = 200, 54
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


def place_fields(recipients: list[RecipientIn], doc: AcceptedPdf,
                 anchors: list[Anchor]) -> dict[int, tuple[int, tuple[int, int, int, int]]]:
    """Where each signer's field goes (index → 0-based page, box): an explicit page and box,
    else their anchor text, else stacked at the bottom of the last page."""
    out: dict[int, tuple[int, tuple[int, int, int, int]]] = {}
    last = doc.page_count - 1
    geo = doc.pages[last]
    slot = 0
    for n, r in enumerate(recipients):
        if r.role != "signer":
            continue
        if r.page is not None and r.box is not None:
            if not 1 <= r.page <= doc.page_count:
                raise Invalid(f"{r.name}: page {r.page} is not in the document "
                              f"({doc.page_count} pages)", field="recipients")
            out[n] = (r.page - 1, r.box)
            continue
        if r.anchor:
            found = [a for a in anchors if a.label == r.anchor]
            if not found:
                raise Invalid(f"{r.name}: the document has no [[sign:{r.anchor}]] anchor",
                              field="recipients")
            a = found[0]
            # Just below the anchor text, left-aligned with it (the text stays readable);
            # above it when there is no room below.
            top = int(a.y0) - 4
            if top - FIELD_H < doc.pages[a.page_index].y0:
                top = int(a.y1) + 4 + FIELD_H
            out[n] = (a.page_index, (int(a.x0), top - FIELD_H, int(a.x0) + FIELD_W, top))
            continue
        col, row = slot % 2, slot // 2
        x = int(geo.x0) + 48 + col * (FIELD_W + 24)
        y = int(geo.y0) + 36 + row * (FIELD_H + 12)
        out[n] = (last, (x, y, x + FIELD_W, y + FIELD_H))
        slot += 1
    return out


async def create_envelope(session: Session, client: Client, settings: Settings,
                          blobs: BlobStore, sender: User, inp: EnvelopeIn,
                          convert: Callable[[bytes, str], bytes] | None = None) -> Envelope:
    """Check everything, store the document and the envelope, start its workflow. Nothing is
    written if any step fails (the blob store is content-addressed: a stray file is
    harmless)."""
    _check(inp)
    data, name = inp.document, inp.document_name
    if name.lower().endswith(".docx"):
        if convert is None:
            raise Invalid("DOCX conversion is not available here; upload a PDF",
                          field="document")
        try:
            data = await asyncio.to_thread(convert, data, name)
        except ConversionFailed as e:
            raise Invalid(str(e), field="document") from None
        except ConverterUnavailable:
            raise Unavailable("Word documents can't be converted right now (LibreOffice is "
                              "not available); upload a PDF instead") from None
        name = name[:-5] + ".pdf"
    try:
        doc = await asyncio.to_thread(accept_pdf, data, filename=name,
                                      max_bytes=settings.max_upload_mb * 1024 * 1024)
    except DocumentRefused as e:
        raise Invalid(e.reason, field="document") from None
    try:
        anchors = (await asyncio.to_thread(find_anchors, doc.data)
                   if any(r.anchor for r in inp.recipients) else [])
    except AnchorSearchFailed:
        raise Invalid(f"{name}: the [[sign:…]] anchors could not be read; place the "
                      "signature fields by page and position instead", field="document") \
            from None
    placements = place_fields(inp.recipients, doc, anchors)
    sha = blobs.put(doc.data)
    now = dt.datetime.now(dt.UTC)
    write_lock(session)
    env = Envelope(workflow_id="", title=inp.title.strip(), message=inp.message.strip(),
                   sender_id=sender.id, quote_id=inp.quote_id, status="sent",
                   document_name=name, page_count=doc.page_count, original_sha256=sha,
                   current_sha256=sha, created_at=now,
                   expires_at=now + dt.timedelta(days=inp.expires_in_days))
    session.add(env)
    session.flush()
    env.workflow_id = workflow_id(settings, env.id)
    rows = []
    for n, r in enumerate(inp.recipients):
        page_box = placements.get(n)
        row = EnvelopeRecipient(
            envelope_id=env.id, name=r.name.strip(), email=r.email.strip(), role=r.role,
            routing_order=r.routing_order, auth_method=r.auth_method,
            access_code_hash=(_hasher.hash(r.access_code.strip())
                              if r.auth_method == "access_code" else None),
            user_id=r.user_id, status="created",
            field_page=page_box[0] if page_box else None,
            field_box=list(page_box[1]) if page_box else None)
        session.add(row)
        rows.append(row)
    session.flush()
    for row in rows:
        if row.field_page is not None:
            row.field_name = f"sig-r{row.id}"
    add_event(session, env, "created", f"{sender.name} <{sender.email}>", key="created",
              detail={"document": name, "sha256": sha, "uploaded_sha256": doc.original_sha256,
                      "pages": doc.page_count, "recipients": len(rows),
                      "notes": " ".join(doc.notes) or None})
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
        certify_first=doc.signature_count == 0)
    await client.start_workflow(EnvelopeWorkflow.run, spec, id=env.workflow_id,
                                task_queue=settings.task_queue)
    session.commit()
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


async def _update(client: Client, env: Envelope, update: object, arg: object | None) -> object:
    handle = client.get_workflow_handle(env.workflow_id)
    try:
        if arg is None:
            return await handle.execute_update(update)  # type: ignore[call-overload]
        return await handle.execute_update(update, arg)  # type: ignore[call-overload]
    except WorkflowUpdateFailedError as e:
        raise _refusal(e) from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise Gone(f"this envelope is {env.status}") from None
        raise


async def sign(client: Client, env: Envelope, recipient: EnvelopeRecipient, typed_name: str,
               info: ClientInfo, drawn_sha256: str = "") -> SignResult:
    if not typed_name.strip():
        raise Invalid("type your name to sign", field="typed_name")
    if len(typed_name) > 200:
        raise Invalid("the name is longer than 200 characters", field="typed_name")
    result = await _update(client, env, EnvelopeWorkflow.sign,
                           SignInput(recipient.id, typed_name.strip(), info, drawn_sha256))
    assert isinstance(result, SignResult)
    return result


async def decline(client: Client, env: Envelope, recipient: EnvelopeRecipient, reason: str,
                  info: ClientInfo) -> SignResult:
    if not reason.strip():
        raise Invalid("a reason is required to decline", field="reason")
    result = await _update(client, env, EnvelopeWorkflow.decline,
                           DeclineInput(recipient.id, reason.strip()[:2000], info))
    assert isinstance(result, SignResult)
    return result


async def void(client: Client, env: Envelope, user: User, reason: str) -> None:
    if not reason.strip():
        raise Invalid("a reason is required to void an envelope", field="reason")
    await _update(client, env, EnvelopeWorkflow.void, VoidInput(user.id, user.name,
                                                                reason.strip()[:2000]))


async def remind(client: Client, env: Envelope) -> int:
    result = await _update(client, env, EnvelopeWorkflow.remind, None)
    assert isinstance(result, int)
    return result


def awaiting_signature(session: Session, user: User) -> list[EnvelopeRecipient]:
    """Envelopes this internal user must countersign now (their inbox lists them)."""
    return list(session.scalars(
        select(EnvelopeRecipient).join(Envelope, Envelope.id == EnvelopeRecipient.envelope_id)
        .where(EnvelopeRecipient.user_id == user.id, Envelope.status == "sent",
               EnvelopeRecipient.status.in_(("sent", "viewed")))
        .order_by(EnvelopeRecipient.sent_at.asc())))


def waiting_recipients(session: Session) -> list[EnvelopeRecipient]:
    """Everyone whose turn it is, longest waiting first (the "who hasn't signed" report)."""
    return list(session.scalars(
        select(EnvelopeRecipient).join(Envelope, Envelope.id == EnvelopeRecipient.envelope_id)
        .where(Envelope.status == "sent", EnvelopeRecipient.status.in_(("sent", "viewed")),
               EnvelopeRecipient.role != "cc")
        .order_by(EnvelopeRecipient.sent_at.asc())))
