"""Envelope pages for logged-in users: the list, the new-envelope form, an envelope's live
status page and files, the "who hasn't signed" report, the sender's Remind and Void, and an
internal recipient's countersignature.

Who may do what: anyone but an auditor may create; an envelope is visible to its sender,
its internal recipients and the service.READ_ALL roles (to anyone else it does not exist: 404);
Remind and Void belong to the sender, legal and admin.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile
from temporalio.client import Client

from activities.envelopes import EVENT_WORDS
from dealdesk.settings import Settings
from documents.filenames import safe_filename
from store.blobs import BlobMissing, BlobStore
from store.models import Envelope, EnvelopeEvent, EnvelopeRecipient, Quote, User, UserRole
from web import uploads
from web.auth import CurrentUser
from web.deps import FormDep, MaybeClientDep, SessionDep, SettingsDep, in_session, off_loop
from web.downloads import content_disposition
from web.errors import AppError, Conflict, Forbidden, Invalid, NotFound, TooLarge, Unavailable
from web.paging import ListingDep
from web.params import MAX_ID, PathId, form_int, form_number
from web.render import is_htmx, render
from web.services import envelopes as service
from web.services import lists, proposals, signer
from web.services.quote_documents import latest_document
from workflows.envelope_messages import Client as ClientInfo

router = APIRouter(include_in_schema=False)
COUNTERSIGNERS = ("legal", "finance", "cfo")
VIEWS = {"all": ("All", ()), "waiting": ("Waiting on someone", ("sent",)),
         "completed": ("Completed", ("completed",)),
         "ended": ("Declined, voided or expired", ("declined", "voided", "expired"))}
NOTICES = {"reminded": "Sent a fresh signing link to everyone whose turn it is.",
           "voided": "Voided. The recipients are being told they no longer need to act.",
           "signed": "Signed. The next recipients are invited automatically.",
           "declined": "Declined. The sender is being told."}
FILES = {"original": "", "current": " (in progress)", "final": " (signed)",
         "certificate": " - certificate of completion"}
ROW = ("name", "email", "role", "order", "auth", "code", "anchor")
SERVICE_FIELDS = {"name": "name", "email": "email", "role": "role", "routing_order": "order",
                  "auth_method": "auth", "access_code": "code"}


def _temporal(request: Request) -> Client:
    client: Client | None = request.app.state.temporal
    if client is None:
        raise Unavailable("the workflow service is not reachable yet: try again in a minute")
    return client


def _done(request: Request, url: str) -> Response:
    """After an action: htmx follows HX-Redirect, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _since(recipients: list[EnvelopeRecipient]) -> dt.datetime | None:
    return min((r.sent_at for r in recipients if r.sent_at), default=None)


# ------------------------------------------------------------------ list and report
@dataclass(frozen=True)
class Waiting:
    """One row of the "who hasn't signed" report."""

    r: EnvelopeRecipient
    env: Envelope
    days: int | None
    may_act: bool


@router.get("/envelopes")
def envelopes_page(request: Request, user: CurrentUser, session: SessionDep,
                         wanted: ListingDep, view: str = "all") -> Response:
    view = view if view in VIEWS else "all"
    page = lists.envelopes(session, user, wanted, VIEWS[view][1])
    rows = []
    for env in page.items:
        waiting = signer.waiting_on(env)
        rows.append({"env": env, "waiting": waiting,
                     "days": signer.days_waiting(_since(waiting)) if waiting else None})
    return render(request, "envelopes.html", {"rows": rows, "page": page, "q": wanted.q,
                                              "view": view, "views": VIEWS,
                                              "may_create": _may_create(user)}, block="list")


@router.get("/envelopes/waiting")
def waiting_report(request: Request, user: CurrentUser, session: SessionDep,
                         notice: str = "") -> Response:
    rows = []
    for r in service.waiting_recipients(session):
        env = session.get(Envelope, r.envelope_id)
        if env is not None and service.may_view(env, user):
            rows.append(Waiting(r, env, signer.days_waiting(r.sent_at), service.may_act(env, user)))
    rows.sort(key=lambda row: row.r.sent_at or signer.now())
    ids = [row.r.id for row in rows]
    reminded = {rid: at for rid, at in session.execute(
        select(EnvelopeEvent.recipient_id, func.max(EnvelopeEvent.at))
        .where(EnvelopeEvent.recipient_id.in_(ids),
               EnvelopeEvent.kind.in_(("reminder", "resend")))
        .group_by(EnvelopeEvent.recipient_id))} if ids else {}
    return render(request, "envelope_waiting.html", {
        "rows": rows, "reminded": reminded, "notice": NOTICES.get(notice)})


# ------------------------------------------------------------------ new envelope
def _may_create(user: User) -> bool:
    return bool(user.roles.intersection(service.CREATORS))


def _countersigners(session: Session) -> list[User]:
    return list(session.scalars(
        select(User).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role.in_(COUNTERSIGNERS), User.is_active)
        .order_by(User.name)).unique())


def _form_page(request: Request, session: Session, settings: Settings, *,
               values: dict[str, str] | None = None, rows: list[dict[str, str]] | None = None,
               errors: dict[str, str] | None = None, kept: dict[str, str] | None = None,
               status_code: int = 200) -> Response:
    rows = list(rows or [])
    rows += [dict.fromkeys(ROW, "") for _ in range(max(0, 4 - len(rows)))]
    values = dict(values or {"expires": "30", "remind": "3"})
    # A double click or a retried post sends this key again: it makes one envelope.
    values["idempotency_key"] = values.get("idempotency_key") or uuid.uuid4().hex
    return render(request, "envelope_new.html", {
        "values": values, "rows": rows,
        "errors": errors or {}, "kept": kept, "countersigners": _countersigners(session),
        "max_mb": settings.max_upload_mb}, status_code=status_code)


limit_upload = uploads.limit_upload(lambda s: s.max_upload_mb, what="documents",
                                    field="document")


def _kept_sig(settings: Settings, user: User, sha: str, name: str) -> str:
    """Binds a kept upload to this user, so a form can't name someone else's blob."""
    msg = f"{user.id}|{sha}|{name}".encode()
    return hmac.new(settings.secret_key.encode(), msg, hashlib.sha256).hexdigest()


def _str(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _rows(form: FormData) -> list[dict[str, str]]:
    cols = {f: [v if isinstance(v, str) else "" for v in form.getlist(f"r_{f}")] for f in ROW}
    count = min(max(len(c) for c in cols.values()), 50)
    return [{f: (cols[f][i].strip() if i < len(cols[f]) else "") for f in ROW}
            for i in range(count)]


def _recipients(rows: list[dict[str, str]], countersigner: User | None
                ) -> tuple[list[service.RecipientIn], list[int]]:
    """The filled-in rows as recipients, and each one's row index (-1: the countersigner)."""
    out: list[service.RecipientIn] = []
    where: list[int] = []
    for i, row in enumerate(rows):
        if not (row["name"] or row["email"]):
            continue
        try:
            order = int(row["order"] or "1")
        except ValueError:
            raise Invalid(f"recipient {len(out) + 1}: routing order must be a whole number",
                          field=f"rows.{i}.order") from None
        out.append(service.RecipientIn(row["name"], row["email"], row["role"] or "signer",
                                       order, row["auth"] or "none", row["code"],
                                       anchor=row["anchor"]))
        where.append(i)
    if countersigner is not None:
        last = max((r.routing_order for r in out), default=0)
        out.append(service.RecipientIn(countersigner.name, countersigner.email, "signer",
                                       last + 1, user_id=countersigner.id))
        where.append(-1)
    return out, where


def _field(error: AppError, where: list[int]) -> str:
    """The form field a service error names ("recipients.2.email" → "rows.3.email")."""
    m = re.fullmatch(r"recipients\.(\d+)\.(\w+)", error.field or "")
    if not m:  # the quote link is a hidden field: its problem goes in the form's flash
        return "form" if error.field in (None, "quote_id") else error.field
    n = int(m.group(1)) - 1
    row = where[n] if 0 <= n < len(where) else -1
    return "countersigner" if row < 0 else f"rows.{row}.{SERVICE_FIELDS.get(m.group(2), 'name')}"


def _signable_quote(session: Session, user: User, quote_id: str) -> tuple[Quote, str]:
    """An approved quote of this user's with a generated document, and that PDF's hash."""
    number = form_int(quote_id, "quote_id", 1, MAX_ID)
    quote = session.get(Quote, number) if number is not None else None
    if quote is None or quote.owner_id != user.id:
        raise NotFound(f"no quote {quote_id} of yours")
    if quote.status != "approved":
        raise Conflict(f"only an approved quote goes out for signature; this one is "
                       f"{quote.status.replace('_', ' ')}")
    doc = latest_document(session, quote)
    if doc is None or doc.version != quote.version:
        raise Conflict(f"generate the document of quote v{quote.version} first")
    return quote, doc.pdf_sha256


@router.get("/envelopes/new")
def new_envelope_page(request: Request, user: CurrentUser, session: SessionDep,
                            settings: SettingsDep, quote_id: str = "",
                            proposal_id: str = "") -> Response:
    if not _may_create(user):
        raise Forbidden("auditors read envelopes but don't send them")
    if proposal_id:
        return _proposal_form(request, session, settings, user, proposal_id)
    if not quote_id:
        return _form_page(request, session, settings)
    quote, sha = _signable_quote(session, user, quote_id)
    name = f"Quote Q-{quote.id} v{quote.version}.pdf"
    return _form_page(request, session, settings, values={
        "title": f"{quote.title} — quote Q-{quote.id} v{quote.version}", "expires": "30",
        "remind": "3", "quote_id": str(quote.id),
        "message": f"Please review and sign our quote for {quote.account.name}."},
        kept={"sha": sha, "name": name, "sig": _kept_sig(settings, user, sha, name)})


def _proposal_form(request: Request, session: Session, settings: Settings, user: User,
                   proposal_id: str) -> Response:
    """The form with a final proposal's PDF, its customer signer on the `customer` anchor
    and its owner on `seller` (the signature blocks assembly put in)."""
    number = form_int(proposal_id, "proposal_id", 1, MAX_ID)
    p = proposals.visible(session, user, number or 0)
    if p.owner_id != user.id:
        raise Forbidden(f"only the proposal's owner ({p.owner.name}) sends it for signature")
    sha, _ = proposals.document(session, user, p.id, p.version, "pdf")
    name = f"Proposal P-{p.id} v{p.version}.pdf"
    rows = []
    if p.customer_signer:
        rows = [dict.fromkeys(ROW, "") | {"name": p.customer_signer, "role": "signer",
                                          "order": "1", "auth": "email_otp",
                                          "anchor": "customer"},
                dict.fromkeys(ROW, "") | {"name": user.name, "email": user.email,
                                          "role": "signer", "order": "2", "auth": "none",
                                          "anchor": "seller"}]
    return _form_page(request, session, settings, values={
        "title": f"{p.title} — proposal P-{p.id} v{p.version}", "expires": "30",
        "remind": "3", "message": f"Please review and sign our proposal for {p.account.name}."},
        rows=rows, kept={"sha": sha, "name": name, "sig": _kept_sig(settings, user, sha, name)})


@router.post("/envelopes/new", dependencies=[Depends(limit_upload)])
async def create_envelope(request: Request, user: CurrentUser, session: SessionDep,
                          settings: SettingsDep, client: MaybeClientDep,
                          form: FormDep) -> Response:
    if not _may_create(user):
        raise Forbidden("auditors read envelopes but don't send them")
    rows = _rows(form)
    values = {k: _str(form, k) for k in ("title", "message", "expires", "remind",
                                         "countersigner", "quote_id", "idempotency_key")}
    blobs = BlobStore(settings.blob_dir)
    where: list[int] = []
    data, name = b"", ""
    try:
        data, name = await off_loop(_upload, form, settings, user, blobs)
        countersigner = (await in_session(session, _countersigner, values["countersigner"])
                         if values["countersigner"] else None)
        recipients, where = _recipients(rows, countersigner)
        try:
            expires = int(values["expires"] or "30")
        except ValueError:
            raise Invalid("expiry is a number of days", field="expires") from None
        remind = form_number(values["remind"], "remind", Decimal(0), Decimal(60)) or 0
        quote_id = form_int(values["quote_id"], "quote_id", 1, MAX_ID)
        env = await service.create_envelope(
            session, client, settings, blobs, user,
            service.EnvelopeIn(title=values["title"], document_name=name, document=data,
                               recipients=recipients, message=values["message"],
                               expires_in_days=expires,
                               remind_every_days=float(remind) or None,
                               quote_id=quote_id,
                               idempotency_key=values["idempotency_key"] or None))
    except (Invalid, TooLarge, Forbidden, Conflict) as e:
        field = _field(e, where)
        kept = None
        if data and field != "document":  # keep a good upload: file inputs can't be refilled
            sha = await off_loop(blobs.put, data)
            kept = {"sha": sha, "name": name, "sig": _kept_sig(settings, user, sha, name)}
        return await in_session(session, _form, request, settings, values=values, rows=rows,
                                errors={field: e.message}, kept=kept, status_code=e.status)
    return RedirectResponse(f"/envelopes/{env.id}", status_code=303)


def _upload(form: FormData, settings: Settings, user: User,
            blobs: BlobStore) -> tuple[bytes, str]:
    """The posted file, or the one kept from an earlier try of this form (blocking)."""
    limit = settings.max_upload_mb * 1024 * 1024
    upload = form.get("document")
    if isinstance(upload, UploadFile) and upload.filename:
        data = upload.file.read(limit + 1)
        name = safe_filename(upload.filename)
        if len(data) > limit:
            raise TooLarge(f"{name} is larger than {settings.max_upload_mb} MB: send a "
                           "smaller file", field="document")
        return data, name
    sha, name = _str(form, "kept_sha"), safe_filename(_str(form, "kept_name"))
    if sha and hmac.compare_digest(_kept_sig(settings, user, sha, _str(form, "kept_name")),
                                   _str(form, "kept_sig")):
        try:
            return blobs.get(sha), name
        except BlobMissing:
            pass
    raise Invalid("choose the document to send (a PDF or a Word .docx file)", field="document")


def _countersigner(session: Session, user_id: str) -> User:
    found = next((u for u in _countersigners(session) if str(u.id) == user_id), None)
    if found is None:
        raise Invalid("choose a countersigner from the list", field="countersigner")
    return found


def _form(session: Session, /, request: Request, settings: Settings,
          **kwargs: Any) -> Response:
    return _form_page(request, session, settings, **kwargs)


# ------------------------------------------------------------------ one envelope
@router.get("/envelopes/{envelope_id}")
def envelope_page(request: Request, envelope_id: PathId, user: CurrentUser,
                        session: SessionDep, live: str = "", notice: str = "") -> Response:
    env = service.visible_envelope(session, envelope_id, user)
    mine = next((r for r in env.recipients if r.user_id == user.id and signer.is_turn(env, r)),
                None)
    live_key = f"{env.status}.{mine.id if mine else 0}"
    if is_htmx(request) and live and live != live_key:
        # The envelope ended or it became this user's turn: the action panel changes too.
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    events = session.scalars(select(EnvelopeEvent).where(
        EnvelopeEvent.envelope_id == env.id).order_by(EnvelopeEvent.at, EnvelopeEvent.id)).all()
    files = [(kind, sha) for kind, sha in (
        ("original", env.original_sha256),
        ("current", env.current_sha256 if env.current_sha256 not in (
            env.original_sha256, env.final_sha256) else None),
        ("final", env.final_sha256), ("certificate", env.certificate_sha256)) if sha]
    response = render(request, "envelope.html", {
        "env": env, "events": events, "words": EVENT_WORDS, "mine": mine, "files": files,
        "by_id": {r.id: r for r in env.recipients},
        "may_act": service.may_act(env, user) and env.status == "sent", "live_key": live_key,
        "waiting": signer.waiting_on(env), "notice": _notice(notice, env),
        "days": signer.days_waiting(_since(signer.waiting_on(env)))}, block="live")
    response.headers["Cache-Control"] = "no-store"
    return response


def _notice(key: str, env: Envelope) -> str | None:
    """After a signature: "the next recipients are invited" only while someone is left."""
    if key == "signed" and not signer.waiting_on(env):
        return ("Signed. That was the last signature: the document is being sealed."
                if env.status == "sent" else "Signed.")
    return NOTICES.get(key)


@router.get("/envelopes/{envelope_id}/files/{kind}.pdf")
def envelope_file(envelope_id: PathId, kind: str, user: CurrentUser, session: SessionDep,
                        settings: SettingsDep) -> Response:
    env = service.visible_envelope(session, envelope_id, user)
    sha = {"original": env.original_sha256, "current": env.current_sha256,
           "final": env.final_sha256, "certificate": env.certificate_sha256}.get(kind)
    if not sha:
        raise NotFound(f"envelope {envelope_id} has no {kind[:40]} file"
                       + (" yet" if kind in FILES else ""))
    try:
        data = BlobStore(settings.blob_dir).get(sha)
    except BlobMissing:
        raise NotFound(f"the {kind} file of envelope {envelope_id} is missing") from None
    stem = PurePath(safe_filename(env.document_name, f"envelope-{env.id}")).stem
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": content_disposition(f"{stem}{FILES[kind]}.pdf"),
        "Cache-Control": "no-store"})


@router.post("/envelopes/{envelope_id}/remind")
async def remind(request: Request, envelope_id: PathId, user: CurrentUser, session: SessionDep,
                 back: Annotated[str, Form()] = "") -> Response:
    env = await in_session(session, service.actable_envelope, envelope_id, user)
    count = await service.remind(_temporal(request), env)
    if is_htmx(request):
        return render(request, "_flash.html", {"success": (
            f"Sent a fresh link to {count} {'person' if count == 1 else 'people'} "
            f"waiting on “{env.title}”.")})
    target = "/envelopes/waiting" if back == "waiting" else f"/envelopes/{env.id}"
    return RedirectResponse(f"{target}?notice=reminded", status_code=303)


@router.post("/envelopes/{envelope_id}/void")
async def void(request: Request, envelope_id: PathId, user: CurrentUser, session: SessionDep,
               reason: Annotated[str, Form()] = "") -> Response:
    env = await in_session(session, service.actable_envelope, envelope_id, user)
    await service.void(_temporal(request), env, user, reason)
    return _done(request, f"/envelopes/{env.id}?notice=voided")


def _my_turn(session: Session, envelope_id: PathId, user: User) -> tuple[Envelope,
                                                                      EnvelopeRecipient]:
    env = service.visible_envelope(session, envelope_id, user)
    mine = [r for r in env.recipients if r.user_id == user.id]
    if not mine:
        raise Forbidden("you are not a recipient of this envelope")
    turn = next((r for r in mine if signer.is_turn(env, r)), None)
    if turn is None:
        names = " and ".join(r.name for r in signer.waiting_on(env))
        raise Conflict(f"Waiting for {names}" if names else f"this envelope is {env.status}")
    return env, turn


@router.post("/envelopes/{envelope_id}/sign")
async def countersign(request: Request, envelope_id: PathId, user: CurrentUser,
                      session: SessionDep, typed_name: Annotated[str, Form()] = "",
                      agree: Annotated[str, Form()] = "") -> Response:
    env, r = await in_session(session, _my_turn, envelope_id, user)
    if agree != "yes":
        raise Invalid("tick “I agree to sign electronically” to sign", field="agree")
    await service.sign(_temporal(request), env, r, typed_name, _client(request))
    return _done(request, f"/envelopes/{env.id}?notice=signed")


@router.post("/envelopes/{envelope_id}/decline")
async def decline(request: Request, envelope_id: PathId, user: CurrentUser, session: SessionDep,
                  reason: Annotated[str, Form()] = "") -> Response:
    env, r = await in_session(session, _my_turn, envelope_id, user)
    await service.decline(_temporal(request), env, r, reason, _client(request))
    return _done(request, f"/envelopes/{env.id}?notice=declined")


def _client(request: Request) -> ClientInfo:
    return ClientInfo(request.client.host if request.client else "",
                      request.headers.get("user-agent", "")[:400], "login")
