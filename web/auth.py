"""Who is asking: a signed-in browser or an API client, and the CSRF check of the browser's
writes.

A browser's session cookie is signed (Starlette's SessionMiddleware) and holds only a random
session id and the CSRF token (and, on signing pages, which recipients passed their access
check). Whose session it is, and whether it still counts, is the ``user_sessions`` row's to
say (web/services/user_sessions.py), so logging out ends it for good. API clients send a
Bearer token (web/services/api_tokens.py). Both are looked up on a worker thread.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from store.models import User
from web.deps import SessionDep, SettingsDep, in_session
from web.errors import Forbidden, Unauthenticated
from web.services import api_tokens, auditor_views, user_sessions
from web.services.login import Attempt
from web.services.user_sessions import SessionPolicy

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SESSION_ID = "sid"


@dataclass(frozen=True)
class Viewer:
    """Who is looking, as pages show it: plain values, readable anywhere (an error page renders
    on the event loop, after the request's session is gone)."""

    id: int
    email: str
    name: str
    roles: frozenset[str]

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(user.id, user.email, user.name, user.roles)


def client_ip(request: Request) -> str:
    """The client's address (behind a proxy, uvicorn takes it from X-Forwarded-For when the
    proxy's address is in FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


def attempt(request: Request, email: str, via: str) -> Attempt:
    return Attempt(email=email, ip=client_ip(request),
                   user_agent=request.headers.get("user-agent", "")[:400], via=via)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def start_session(request: Request, session_id: str) -> None:
    """Point the cookie at a new server-side session, with a new CSRF token (nothing from
    before the login carries over)."""
    request.session.clear()
    request.session.update({SESSION_ID: session_id, "csrf": secrets.token_urlsafe(32)})


def session_id(request: Request) -> str | None:
    value = request.session.get(SESSION_ID)
    return value if isinstance(value, str) else None


def end_session(request: Request) -> None:
    request.session.clear()


async def verify_csrf(request: Request) -> None:
    """Unsafe requests riding on the cookie must carry the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if not sent and "form" in request.headers.get("content-type", ""):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise Forbidden("the form's security token is missing or expired: reload the page "
                        "and try again")


def optional_user(request: Request, session: SessionDep, settings: SettingsDep) -> User | None:
    """The signed-in user (cookie or Bearer token), looked up on a worker thread."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = api_tokens.resolve(session, auth[7:].strip())
        request.state.via_token = True
        return user
    sid = session_id(request)
    if sid is None:
        return None
    row = user_sessions.resolve(session, sid, SessionPolicy.of(settings))
    if row is None:
        request.session.pop(SESSION_ID, None)
        return None
    request.state.session_row = row.id
    return row.user


async def current_user(request: Request, session: SessionDep,
                       user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise Unauthenticated("log in first")
    if not getattr(request.state, "via_token", False):
        await verify_csrf(request)
    request.state.user = Viewer.of(user)
    if auditor_views.watched(user, request.method, bool(request.headers.get("HX-Request"))):
        await in_session(session, auditor_views.record, user, request.url.path,
                         request.url.query)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require(*roles: str) -> Any:
    """Dependency: the user must hold one of ``roles``."""

    async def check(user: CurrentUser) -> User:
        if not user.roles.intersection(roles):
            raise Forbidden("this page needs one of these roles: " +
                            ", ".join(r.replace("_", " ") for r in roles))
        return user

    return Depends(check)
