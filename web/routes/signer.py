"""The signing page for recipients without an account: ``/sign/{token}``.

The token names one recipient of one envelope and nothing else: every handler acts as that
recipient, whatever a form posts. Every answer is ``no-store``, and signing links are kept
out of the access log (see ``_RedactTokens``). Failures render the signing page itself (never
the logged-in app's error page): 404 for a link that isn't ours, 410 for an ended one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from temporalio.client import Client

from activities.mail import Mailer
from dealdesk.parts import smtp_config
from dealdesk.settings import Settings
from documents.filenames import safe_filename
from store.blobs import BlobStore
from store.models import Envelope, EnvelopeRecipient
from web.auth import verify_csrf
from web.deps import SessionDep, SettingsDep, in_session, off_loop
from web.downloads import content_disposition
from web.errors import AppError, Forbidden, Invalid, NotFound, Unavailable
from web.render import render
from web.services import envelopes as envelope_service
from web.services import signer
from workflows.envelope_messages import Client as ClientInfo

log = logging.getLogger("dealdesk.web.signer")
_TOKEN_IN_PATH = re.compile(r"/sign/[A-Za-z0-9_-]+")


class _RedactTokens(logging.Filter):
    """Signing links are bearer secrets: uvicorn's access log gets ``/sign/…`` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_PATH.sub("/sign/…", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


_REDACT = _RedactTokens()
logging.getLogger("uvicorn.access").addFilter(_REDACT)  # idempotent: one filter object


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


class SignerRoute(APIRoute):
    """Errors on these routes render the signer's own page, not the app's error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except AppError as e:
                response = render(request, "sign_error.html", {
                    "error": e.message, "status": e.status,
                    "why": getattr(e, "why", None)}, status_code=e.status)
            return _no_store(response)

        return guarded


router = APIRouter(include_in_schema=False, route_class=SignerRoute)
Link = tuple[Envelope, EnvelopeRecipient]


def open_link(token: str, session: SessionDep) -> Link:
    r = signer.open_link(session, token)
    env = session.get(Envelope, r.envelope_id)
    assert env is not None
    return env, r


LinkDep = Annotated[Link, Depends(open_link)]
Csrf = Depends(verify_csrf)


def _ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _ua(request: Request) -> str:
    return request.headers.get("user-agent", "")[:400]


def _temporal(request: Request) -> Client:
    client: Client | None = request.app.state.temporal
    if client is None:
        raise Unavailable("the signing service is starting up: try again in a minute")
    return client


def _masked(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def _page(request: Request, session: Session, env: Envelope, r: EnvelopeRecipient, *,
          token: str, state: str | None = None, status: int = 200,
          error: AppError | None = None, **extra: object) -> Response:
    """The signing page in one of its states: waiting, gate, ready, done, signed, declined."""
    if state is None:
        if r.status == "signed":
            state = "done"
        elif not signer.is_turn(env, r):
            state = "waiting"
        elif not signer.passed_gate(request.session, r):
            state = "gate"
        else:
            state = "ready"
    if state == "ready":
        signer.record_view(session, env, r, _ip(request), _ua(request))
    if state == "gate" and error is None:
        error = signer.lock_error(r)  # say so before they type a code
    ctx: dict[str, object] = {
        "env": env, "r": r, "state": state, "token": token,
        "waiting": [w.name for w in signer.waiting_on(env) if w.id != r.id],
        "pages": range(1, env.page_count + 1), "masked_email": _masked(r.email),
        "otp_sent": r.otp_expires_at is not None and r.otp_expires_at > signer.now(),
        "error": error.message if error else None,
        "error_field": error.field if error else None, **extra}
    response = render(request, "sign.html", ctx, status_code=status)
    if error is not None and error.status == 429 and r.locked_until:
        seconds = int((r.locked_until - signer.now()).total_seconds())
        response.headers["Retry-After"] = str(max(1, seconds))
    return response


@router.get("/sign/{token}")
def signing_page(request: Request, token: str, session: SessionDep,
                       link: LinkDep) -> Response:
    env, r = link
    return _page(request, session, env, r, token=token)


def _rendered(session: Session, /, request: Request, env: Envelope, r: EnvelopeRecipient,
              **kwargs: Any) -> Response:
    """:func:`_page` with the session first, for ``in_session`` (async routes)."""
    return _page(request, session, env, r, **kwargs)


@router.post("/sign/{token}/code", dependencies=[Csrf])
def enter_code(request: Request, token: str, session: SessionDep, link: LinkDep,
                     code: Annotated[str, Form()] = "") -> Response:
    env, r = link
    if r.auth_method == "none" or not signer.is_turn(env, r):
        return RedirectResponse(f"/sign/{token}", status_code=303)
    try:
        signer.check_code(session, env, r, code[:100], request.session, _ip(request),
                          _ua(request))
    except AppError as e:
        return _page(request, session, env, r, token=token, state="gate", status=e.status,
                     error=e)
    return RedirectResponse(f"/sign/{token}", status_code=303)


@router.post("/sign/{token}/send-code", dependencies=[Csrf])
def send_code(request: Request, token: str, session: SessionDep, link: LinkDep,
                    settings: SettingsDep) -> Response:
    env, r = link
    if r.auth_method != "email_otp" or not signer.is_turn(env, r):
        return RedirectResponse(f"/sign/{token}", status_code=303)
    try:
        key, subject, body = signer.new_otp(session, env, r)
    except AppError as e:
        return _page(request, session, env, r, token=token, state="gate", status=e.status,
                     error=e)
    mailer = Mailer(request.app.state.sessions, smtp_config(settings),
                    BlobStore(settings.blob_dir))
    message_id = mailer.queue(key, r.email, subject, body)
    try:
        mailer.deliver(message_id)
    except OSError:
        log.warning("could not deliver a signing code for envelope %s", env.id)
        raise Unavailable("the code could not be emailed just now: try again in a minute") \
            from None
    return _page(request, session, env, r, token=token, state="gate",
                 notice=f"We emailed a 6-digit code to {_masked(r.email)}. It works for 10 "
                        "minutes.")


@router.get("/sign/{token}/pages/{page}.png")
async def page_image(request: Request, page: int, session: SessionDep, link: LinkDep,
                     settings: SettingsDep) -> Response:
    env, r = link
    _must_see(request, env, r)
    if not 1 <= page <= env.page_count:
        raise NotFound(f"the document has {env.page_count} pages")
    slots: asyncio.Semaphore | None = getattr(request.app.state, "page_slots", None)
    if slots is None:  # at most two pdftoppm at a time: lazy images arrive in bursts
        slots = request.app.state.page_slots = asyncio.Semaphore(2)
    pdf = BlobStore(settings.blob_dir).path(env.current_sha256)
    cache = settings.var_dir / "cache" / "pages" / env.current_sha256
    async with slots:
        path = await asyncio.to_thread(signer.page_png, pdf, cache, page)
    return FileResponse(path, media_type="image/png")


@router.get("/sign/{token}/document.pdf")
def document(request: Request, session: SessionDep, link: LinkDep,
                   settings: SettingsDep) -> Response:
    env, r = link
    _must_see(request, env, r)
    name = f"{PurePath(safe_filename(env.document_name)).stem}.pdf"
    return FileResponse(BlobStore(settings.blob_dir).path(env.current_sha256),
                        media_type="application/pdf",
                        headers={"Content-Disposition": content_disposition(name)})


def _must_see(request: Request, env: Envelope, r: EnvelopeRecipient) -> None:
    if r.status != "signed" and not (signer.is_turn(env, r)
                                     and signer.passed_gate(request.session, r)):
        raise Forbidden("open the signing link first to see the document")


@router.post("/sign/{token}/sign", dependencies=[Csrf])
async def sign(request: Request, token: str, session: SessionDep, link: LinkDep,
               settings: SettingsDep,
               typed_name: Annotated[str, Form()] = "",
               agree: Annotated[str, Form()] = "",
               drawing: Annotated[str, Form()] = "") -> Response:
    env, r = link
    if r.status == "signed" or not signer.is_turn(env, r) \
            or not signer.passed_gate(request.session, r):
        return await in_session(session, _rendered, request, env, r, token=token, status=409)
    try:
        if not typed_name.strip():
            raise Invalid("Type your full name to sign", field="typed_name")
        if agree != "yes":
            raise Invalid("Tick “I agree to sign electronically” to sign", field="agree")
        drawn = await off_loop(_keep_drawing, settings, drawing)
        await envelope_service.sign(_temporal(request), env, r, typed_name,
                                    ClientInfo(_ip(request), _ua(request), r.auth_method),
                                    drawn_sha256=drawn)
    except AppError as e:
        return await in_session(session, _rendered, request, env, r, token=token,
                                status=e.status, error=e, typed_name=typed_name,
                                agreed=agree == "yes")
    return await in_session(session, _signed_page, request, env, r, token)


def _keep_drawing(settings: Settings, drawing: str) -> str:
    """The drawn signature as a PNG in the blob store ("" when none was drawn)."""
    png = signer.drawing_png(drawing)
    return BlobStore(settings.blob_dir).put(png) if png is not None else ""


def _signed_page(session: Session, request: Request, env: Envelope, r: EnvelopeRecipient,
                 token: str) -> Response:
    session.refresh(env)  # re-read what the workflow wrote
    session.refresh(r)
    return _page(request, session, env, r, token=token, state="signed")


@router.post("/sign/{token}/decline", dependencies=[Csrf])
async def decline(request: Request, token: str, session: SessionDep, link: LinkDep,
                  reason: Annotated[str, Form()] = "") -> Response:
    env, r = link
    if r.status == "signed" or not signer.is_turn(env, r) \
            or not signer.passed_gate(request.session, r):
        return await in_session(session, _rendered, request, env, r, token=token, status=409)
    try:
        await envelope_service.decline(_temporal(request), env, r, reason,
                                       ClientInfo(_ip(request), _ua(request), r.auth_method))
    except AppError as e:
        return await in_session(session, _rendered, request, env, r, token=token,
                                status=e.status, error=e, decline_open=True, reason=reason)
    return await in_session(session, _rendered, request, env, r, token=token,
                            state="declined")
