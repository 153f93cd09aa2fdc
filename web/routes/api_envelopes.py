"""The envelope part of the JSON API: send a document for signature, follow it, remind, void,
and verify any signed PDF. (Files download from ``/envelopes/{id}/files/{kind}.pdf``, which
takes the same Bearer token.)"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from documents.filenames import safe_filename
from documents.verify import UnreadablePdf, default_trust_roots, to_json, verify_pdf
from store.models import Envelope, EnvelopeEvent, User
from web.auth import CurrentUser
from web.deps import ClientDep, IdempotencyKey, MaybeClientDep, SessionDep, SettingsDep, in_session
from web.errors import API_ERRORS, AppError, Forbidden, Invalid, TooLarge
from web.params import NoNul, Page, PathId, Points, RowId
from web.services import envelopes as service

router = APIRouter(prefix="/api/v1", tags=["envelopes"], responses=API_ERRORS)


class RecipientSpecIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=255)
    role: Literal["signer", "approver", "cc"] = "signer"
    routing_order: int = Field(1, ge=1, le=20)
    auth_method: Literal["none", "access_code", "email_otp"] = "none"
    access_code: str = Field("", max_length=100)
    user_email: str | None = Field(None, max_length=255, description="an internal user "
                                   "(countersigner) who signs from the app instead of a link")
    anchor: str = Field("", max_length=60, description="label of a [[sign:LABEL]] text")
    page: Page | None = Field(None, description="1-based page, with box")
    box: tuple[Points, Points, Points, Points] | None = Field(
        None, description="x1, y1, x2, y2 in points")


class EnvelopeSpecIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    message: str = Field("", max_length=4000)
    recipients: list[RecipientSpecIn] = Field(min_length=1, max_length=50)
    expires_in_days: int = Field(30, ge=1, le=365)
    remind_every_days: float | None = Field(3, ge=0.01, le=60)
    quote_id: RowId | None = Field(None, description="the approved quote this envelope sends "
                                   "(its generated PDF): signing it wins the deal")


class RecipientOut(BaseModel):
    id: int
    name: str
    email: str
    role: str
    routing_order: int
    auth_method: str
    status: str
    sent_at: dt.datetime | None
    viewed_at: dt.datetime | None
    signed_at: dt.datetime | None
    declined_at: dt.datetime | None
    decline_reason: str | None


class EventOut(BaseModel):
    at: dt.datetime
    kind: str
    actor: str
    ip: str | None
    detail: dict[str, Any]


class EnvelopeOut(BaseModel):
    id: int
    title: str
    status: str
    sender: str
    document_name: str
    page_count: int
    created_at: dt.datetime
    expires_at: dt.datetime
    completed_at: dt.datetime | None
    original_sha256: str
    final_sha256: str | None
    certificate_sha256: str | None
    waiting_on: list[str]
    recipients: list[RecipientOut]
    events: list[EventOut] = []

    @classmethod
    def of(cls, env: Envelope, events: list[EnvelopeEvent] | None = None) -> EnvelopeOut:
        return cls(
            id=env.id, title=env.title, status=env.status, sender=env.sender.email,
            document_name=env.document_name, page_count=env.page_count,
            created_at=env.created_at, expires_at=env.expires_at,
            completed_at=env.completed_at, original_sha256=env.original_sha256,
            final_sha256=env.final_sha256, certificate_sha256=env.certificate_sha256,
            waiting_on=[r.email for r in env.recipients
                        if env.status == "sent" and r.status in ("sent", "viewed")
                        and r.role != "cc"],
            recipients=[RecipientOut(
                id=r.id, name=r.name, email=r.email, role=r.role,
                routing_order=r.routing_order, auth_method=r.auth_method, status=r.status,
                sent_at=r.sent_at, viewed_at=r.viewed_at, signed_at=r.signed_at,
                declined_at=r.declined_at, decline_reason=r.decline_reason)
                for r in env.recipients],
            events=[EventOut(at=e.at, kind=e.kind, actor=e.actor, ip=e.ip, detail=e.detail)
                    for e in events or []])


class ReasonIn(BaseModel):
    reason: Annotated[str, NoNul] = Field(min_length=1, max_length=2000)


def _spec(session: Session, raw: str) -> service.EnvelopeIn:
    try:
        spec = EnvelopeSpecIn.model_validate(json.loads(raw))
    except json.JSONDecodeError as e:
        raise Invalid(f"spec is not JSON: {e.msg} at position {e.pos}", field="spec") from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"spec.{where}: {first['msg']}", field=f"spec.{where}") from None
    recipients = []
    for r in spec.recipients:
        user_id = None
        if r.user_email:
            internal = session.scalar(select(User).where(User.email == r.user_email,
                                                         User.is_active))
            if internal is None:
                raise Invalid(f"no active user {r.user_email!r}", field="spec.recipients")
            user_id = internal.id
        recipients.append(service.RecipientIn(
            name=r.name, email=r.email, role=r.role, routing_order=r.routing_order,
            auth_method=r.auth_method, access_code=r.access_code, user_id=user_id,
            anchor=r.anchor, page=r.page, box=r.box))
    return service.EnvelopeIn(title=spec.title, message=spec.message, document_name="",
                              document=b"", recipients=recipients,
                              expires_in_days=spec.expires_in_days,
                              remind_every_days=spec.remind_every_days, quote_id=spec.quote_id)


@router.post("/envelopes", response_model=EnvelopeOut, status_code=201)
async def create_envelope(request: Request, user: CurrentUser, session: SessionDep,
                          client: MaybeClientDep, settings: SettingsDep,
                          document: Annotated[UploadFile, File()],
                          spec: Annotated[str, Form(max_length=100_000,
                                                    description="EnvelopeSpecIn as JSON")],
                          idempotency_key: IdempotencyKey = None) -> EnvelopeOut:
    """Multipart: ``document`` (PDF or DOCX) and ``spec`` (JSON, see EnvelopeSpecIn).

    Answers at once with the envelope "preparing": a Word document is converted by the
    envelope's workflow, which then invites the first recipients ("sent"). A retry with the
    same ``Idempotency-Key`` returns the same envelope."""
    if not user.roles.intersection(service.CREATORS):
        raise Forbidden("your role cannot send envelopes")
    limit = settings.max_upload_mb * 1024 * 1024
    data = await document.read(limit + 1)
    name = safe_filename(document.filename, "document.pdf")
    if len(data) > limit:
        raise TooLarge(f"{name} is larger than {settings.max_upload_mb} MB", field="document")
    base = await in_session(session, _spec, spec)
    inp = dataclasses.replace(base, document=data, document_name=name,
                              idempotency_key=idempotency_key)
    try:
        env = await service.create_envelope(session, client, settings,
                                            request.app.state.blobs, user, inp)
    except AppError as e:
        if e.field and e.field not in ("document", "Idempotency-Key"):
            e.field = f"spec.{e.field}"  # the service's fields are the spec's
        raise
    return await in_session(session, _out, env.id)


def _out(session: Session, envelope_id: int) -> EnvelopeOut:
    return EnvelopeOut.of(service.get_envelope(session, envelope_id))


@router.get("/envelopes", response_model=list[EnvelopeOut])
def list_envelopes(user: CurrentUser, session: SessionDep,
                   status: Literal["preparing", "sent", "completed", "declined", "voided",
                                   "expired", "failed"] | None = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[EnvelopeOut]:
    q = service.visible(select(Envelope), user).order_by(Envelope.created_at.desc()).limit(
        limit)
    if status:
        q = q.where(Envelope.status == status)
    return [EnvelopeOut.of(e) for e in session.scalars(q).unique()]


@router.get("/envelopes/{envelope_id}", response_model=EnvelopeOut)
def get_envelope(envelope_id: PathId, user: CurrentUser, session: SessionDep) -> EnvelopeOut:
    env = service.visible_envelope(session, envelope_id, user)
    events = list(session.scalars(select(EnvelopeEvent).where(
        EnvelopeEvent.envelope_id == env.id).order_by(EnvelopeEvent.id)))
    return EnvelopeOut.of(env, events)


@router.post("/envelopes/{envelope_id}/void", status_code=202)
async def void(envelope_id: PathId, body: ReasonIn, user: CurrentUser, session: SessionDep,
               client: ClientDep) -> dict[str, str]:
    env = await in_session(session, service.actable_envelope, envelope_id, user)
    await service.void(client, env, user, body.reason)
    return {"status": "voided"}


@router.post("/envelopes/{envelope_id}/remind", status_code=202)
async def remind(envelope_id: PathId, user: CurrentUser, session: SessionDep,
                 client: ClientDep) -> dict[str, int]:
    env = await in_session(session, service.actable_envelope, envelope_id, user)
    return {"reminded": await service.remind(client, env)}


@router.post("/verify")
async def verify(user: CurrentUser, settings: SettingsDep,
                 file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """A per-signature report of any PDF (trusting this installation's root CA)."""
    limit = settings.max_upload_mb * 1024 * 1024
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{safe_filename(file.filename, 'the file')} is larger than "
                       f"{settings.max_upload_mb} MB", field="file")
    roots = default_trust_roots(settings.pki_dir)
    try:
        report = await asyncio.to_thread(verify_pdf, data, roots)
    except UnreadablePdf as e:
        raise Invalid(str(e), field="file") from None
    return to_json(report)
