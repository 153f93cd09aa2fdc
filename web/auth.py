"""Authentication: argon2 password hashes, cookie sessions with CSRF tokens, API tokens.

The session cookie is signed (Starlette's SessionMiddleware) and holds only the user id,
a CSRF token and the password-hash fingerprint, so changing a password ends old sessions.
API tokens are random 256-bit strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import ApiToken, User
from web.deps import SessionDep
from web.errors import AppError, Forbidden

_hasher = PasswordHasher()
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TOKEN_TTL = dt.timedelta(days=30)
@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps unknown-email logins as slow as wrong-password ones
    (made on first use, not at import: every process would pay for it at start-up)."""
    return _hasher.hash("not-a-real-password")


class Unauthenticated(AppError):
    status = 401


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


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.is_active:
        return None
    return user


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def log_in(request: Request, user: User) -> None:
    request.session.clear()
    request.session.update(uid=user.id, pw=_fingerprint(user), csrf=secrets.token_urlsafe(32))


def log_out(request: Request) -> None:
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


def issue_api_token(session: Session, user: User) -> str:
    token = "ddk_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hashlib.sha256(token.encode()).hexdigest(),
                         expires_at=dt.datetime.now(dt.UTC) + TOKEN_TTL))
    return token


def _user_from_bearer(session: Session, token: str) -> User | None:
    return session.scalar(select(User).join(ApiToken, ApiToken.user_id == User.id).where(
        ApiToken.token_hash == hashlib.sha256(token.encode()).hexdigest(),
        ApiToken.expires_at > dt.datetime.now(dt.UTC), User.is_active))


def optional_user(request: Request, session: SessionDep) -> User | None:
    """The signed-in user (cookie or Bearer token), looked up on a worker thread."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = _user_from_bearer(session, auth[7:].strip())
        if user is None:
            raise Unauthenticated("the API token is unknown or expired; get a new one from "
                                  "POST /api/v1/auth/token")
        request.state.via_token = True
        return user
    uid = request.session.get("uid")
    if uid is None:
        return None
    user = session.get(User, uid)
    if user is None or not user.is_active or request.session.get("pw") != _fingerprint(user):
        request.session.clear()
        return None
    return user


async def current_user(request: Request,
                       user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise Unauthenticated("log in first")
    if not getattr(request.state, "via_token", False):
        await verify_csrf(request)
    request.state.user = Viewer.of(user)
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
