"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError
from starlette.middleware.sessions import SessionMiddleware
from temporalio.client import Client, RPCTimeoutOrCancelledError
from temporalio.service import RPCError

from dealdesk.parts import open_pki
from dealdesk.settings import Settings, get_settings, with_secret_key
from documents.convert import DEFAULT_UNO_VENV, Converter
from documents.timestamps import internal_timestamper
from store.blobs import BlobStore
from store.db import UnstorableText, make_engine, make_session_factory
from web.errors import AppError, Invalid, TooManyTries, Unauthenticated, Unavailable
from web.headers import SecurityHeaders
from web.render import is_htmx, render
from web.routes import (
    account,
    account_health,
    admin,
    api,
    api_auth,
    api_cpq,
    api_deals,
    api_envelopes,
    api_health,
    api_library,
    api_proposals,
    api_rfps,
    api_subscriptions,
    builder,
    catalog,
    contracts,
    deal_history,
    deals,
    health,
    inbox,
    invoices,
    library,
    pages,
    pki,
    policies,
    proposals,
    quote_docs,
    quotes,
    rfps,
    subscriptions,
    verify,
)
from web.routes import envelopes as envelope_pages
from web.routes import signer as signing_pages
from web.services.refusals import temporal_unavailable
from web.static_files import MemoryStatic
from web.warmup import warm

log = logging.getLogger("dealdesk.web")
THREADS = 16
"""Threads for store work, sync routes and blocking documents. Enough that reads go on while
writers queue for SQLite's one write lock (a waiting writer sleeps without the GIL); few
enough that the threads running Python at once stay few: every one of them takes turns at
the GIL with the event loop, and with 100 a burst of 90 requests delayed the loop by 30-200 ms
(bench.burst), against ~10 ms with 16 and no loss of throughput."""
# Where a validation error was found: the field's name alone reads better.
_LOCATIONS = ("body", "query", "path", "header", "cookie")


def _encodable(text: str) -> str:
    """``text`` with any unpaired surrogate (from a request's JSON) shown as U+FFFD."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")

async def _connect_temporal(app: FastAPI, settings: Settings) -> None:
    """Keep trying in the background: the UI serves (and /healthz reports) meanwhile."""
    while True:
        try:
            app.state.temporal = await Client.connect(settings.temporal_address,
                                                      namespace=settings.temporal_namespace)
            return
        except RuntimeError:
            await asyncio.sleep(1)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = with_secret_key(settings or get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        engine = make_engine(settings.database_url, refuse_nul=True)
        app.state.engine = engine
        app.state.sessions = make_session_factory(engine)
        app.state.blobs = BlobStore(settings.blob_dir)
        app.state.pki = await asyncio.to_thread(open_pki, settings)
        # LibreOffice starts on the first DOCX upload, then stays warm.
        converter = Converter(uno_venv=settings.uno_venv or DEFAULT_UNO_VENV,
                              work_dir=settings.var_dir / "libreoffice")
        app.state.converter = lambda data, name: converter.convert(data, filename=name)
        app.state.tsa = internal_timestamper(app.state.pki)
        app.state.temporal = None
        app.state.health = health.HealthProbe(settings, engine.dialect.name)
        connecting = asyncio.create_task(_connect_temporal(app, settings))
        try:
            await asyncio.wait_for(asyncio.shield(connecting), timeout=10)
        except TimeoutError:
            log.warning("Temporal at %s not reachable yet; retrying in the background",
                        settings.temporal_address)
        probing = asyncio.create_task(app.state.health.run(app.state))
        await warm(app)
        # The lifespan state: web/health_first.py answers /healthz from it.
        yield {"health": app.state.health}
        probing.cancel()
        connecting.cancel()
        await asyncio.to_thread(converter.close)
        engine.dispose()

    app = FastAPI(title="dealdesk", version="0.1.0", lifespan=lifespan,
                  docs_url="/api/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    # The cookie only carries the session's id: the user_sessions row decides how long a
    # session lasts (web/services/user_sessions.py).
    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key,
                       session_cookie="dealdesk_session", same_site="lax",
                       https_only=settings.cookies_secure,
                       max_age=settings.session_max_days * 86400)

    app.add_middleware(SecurityHeaders)

    def wants_json(request: Request) -> bool:
        return (request.url.path.startswith("/api/")
                or ("application/json" in request.headers.get("accept", "")
                and "text/html" not in request.headers.get("accept", "")))

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        exc.message = _encodable(exc.message)  # it may quote the request's text
        response = answer(request, exc)
        if isinstance(exc, TooManyTries) and exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    def answer(request: Request, exc: AppError) -> Response:
        if wants_json(request):
            body: dict[str, object] = {"detail": exc.message}
            if exc.field:
                body["field"] = _encodable(exc.field)
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return JSONResponse(body, status_code=exc.status, headers=headers)
        if isinstance(exc, Unauthenticated):
            if is_htmx(request):
                return Response(status_code=401, headers={"HX-Redirect": "/login"})
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if is_htmx(request):
            response = render(request, "_flash.html", {"error": exc.message},
                              status_code=exc.status)
            response.headers["HX-Retarget"] = "#flash"
            response.headers["HX-Reswap"] = "innerHTML"
            return response
        return render(request, "error.html", {"error": exc.message, "status": exc.status},
                      status_code=exc.status)

    @app.exception_handler(RPCError)
    async def temporal_error(request: Request, exc: RPCError) -> Response:
        log.warning("Temporal call failed: %s", exc)
        return await app_error(request, temporal_unavailable(exc))

    @app.exception_handler(RPCTimeoutOrCancelledError)
    async def temporal_timeout(request: Request, exc: RPCTimeoutOrCancelledError) -> Response:
        return await app_error(request, Unavailable(
            "the workflow service did not answer in time; try again in a moment"))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems, fields = [], []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in _LOCATIONS)
            problems.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
            fields.append(where)
        message = "; ".join(problems) or "the request is malformed"
        return await app_error(request, Invalid(message, field=next(filter(None, fields),
                                                                     None)))

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: Exception) -> Response:
        # A backstop: every route bounds its numbers (web/params.py); reaching here is a bug.
        log.error("a value the store can't hold reached it on %s %s", request.method,
                  request.url.path, exc_info=exc)
        return await app_error(request, Invalid(
            "a value in the request is out of range for the store: use smaller numbers"))

    @app.exception_handler(UnstorableText)
    async def unstorable_text(request: Request, exc: UnstorableText) -> Response:
        return await app_error(request, Invalid(str(exc)))

    @app.exception_handler(UnicodeEncodeError)
    async def unpaired_surrogate(request: Request, exc: UnicodeEncodeError) -> Response:
        # JSON may escape half a UTF-16 pair ("\ud800"): Python decodes it, but no store,
        # Temporal payload or response can encode it.
        if "surrogates" not in exc.reason:
            raise exc
        return await app_error(request, Invalid(
            "the request's text holds an unpaired surrogate (such as \\ud800 in JSON): "
            "send valid Unicode text"))

    app.mount("/static", MemoryStatic(Path(__file__).parent / "static"), name="static")
    for router in (health.router, pages.router, account.router, inbox.router, quotes.router,
                   policies.router, admin.router, api.router, api_auth.router, api_cpq.router,
                   api_envelopes.router, api_library.router, library.router,
                   api_rfps.router, rfps.router, api_proposals.router, proposals.router,
                   api_deals.router, deals.router, api_health.router, account_health.router,
                   pki.router, invoices.pages, invoices.api, builder.router,
                   catalog.router, quote_docs.router, quote_docs.api,
                   api_subscriptions.router, subscriptions.router, contracts.api,
                   contracts.pages, deal_history.router, deal_history.api):
        app.include_router(router)
    app.include_router(verify.router)
    app.include_router(envelope_pages.router)
    app.include_router(signing_pages.router)
    return app
