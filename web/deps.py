"""Request-scoped dependencies (the store session, the Temporal client, the settings) and the
two helpers that keep store work off the event loop.

Everything hangs off ``app.state`` (set up in the app factory's lifespan), never off
import-time globals.

**Nothing blocks the event loop.** The session dependency makes the session on the event
loop, which costs no I/O (a session takes a connection when it is first used, on a worker
thread), and closes it on a worker thread; routes that only touch the store are plain ``def``
(they run on a worker thread too). A route that awaits something (a workflow Update, a file
upload) is ``async`` and does its store work through :func:`in_session`, which runs it on a
worker thread and ends the transaction there: no transaction, and so no SQLite write lock, is
ever open while the route awaits Temporal.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Annotated, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData
from temporalio.client import Client

from dealdesk.settings import Settings
from store.db import in_session
from web.errors import Unavailable

P = ParamSpec("P")
T = TypeVar("T")


async def get_session(request: Request) -> AsyncIterator[Session]:
    # (A plain generator would cost a trip to the thread pool to open it as well.)
    session: Session = request.app.state.sessions()
    try:
        yield session
    finally:
        # Its own limiter, as FastAPI closes a plain generator's: a close never waits for a
        # thread held by a request that waits for a pooled connection.
        await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))


async def get_client(request: Request) -> Client:
    client: Client | None = request.app.state.temporal
    if client is None:
        raise Unavailable("the workflow service is not reachable yet: try again in a minute")
    return client


async def get_optional_client(request: Request) -> Client | None:
    """The Temporal client, or None while it is unreachable (for use cases that can leave a
    workflow's start to the reconciler)."""
    client: Client | None = request.app.state.temporal
    return client


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


async def form_data(request: Request) -> FormData:
    """The posted form, parsed on the event loop (it is I/O), for a plain ``def`` route."""
    return await request.form()


async def off_loop(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on a worker thread (blocking work: files, PDFs, hashing)."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


SessionDep = Annotated[Session, Depends(get_session)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
ClientDep = Annotated[Client, Depends(get_client)]
MaybeClientDep = Annotated[Client | None, Depends(get_optional_client)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
FormDep = Annotated[FormData, Depends(form_data)]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200,
    description="any unique string (e.g. a UUID): a retried create with the same key returns "
                "what the first made instead of making it twice")]

__all__ = ["ClientDep", "FormDep", "IdempotencyKey", "MaybeClientDep", "SessionDep",
           "SessionsDep", "SettingsDep", "in_session", "off_loop"]
