"""API tokens: issued named and with an expiry (30 days unless chosen, at most a year),
listed, revoked; shared by the account page, the JSON API and ``dealdesk tokens``.

A token is ``ddk_`` and 43 random characters. Only its SHA-256 is stored, and its first 12
characters (``prefix``) to tell tokens apart in lists and to name one on the command line.
Requests move ``last_used_at`` on at most once a minute.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import String, bindparam, or_, select
from sqlalchemy.orm import Session, joinedload

from store import audit
from store.db import write_lock
from store.models import ApiToken, User
from web.errors import Invalid, NotFound, Unauthenticated

DEFAULT_DAYS = 30
MAX_DAYS = 365
PREFIX_LENGTH = 12
TOUCH_EVERY = dt.timedelta(minutes=1)
_GET_ONE = "create a new one on your Account page or with POST /api/v1/auth/token"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    """The secret itself: shown once, never stored."""
    row: ApiToken


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def status(row: ApiToken, now: dt.datetime | None = None) -> str:
    """active, expired or revoked."""
    if row.revoked_at is not None:
        return "revoked"
    return "active" if row.expires_at > (now or _now()) else "expired"


def check_request(name: str, days: int) -> str:
    """The token's name, tidied, if it and the lifetime asked for are acceptable."""
    name = name.strip()
    if len(name) > 100:
        raise Invalid("the token's name is too long: use at most 100 characters", field="name")
    if not 1 <= days <= MAX_DAYS:
        raise Invalid(f"a token lasts 1 to {MAX_DAYS} days", field="expires_in_days")
    return name


def issue(session: Session, user: User, *, name: str, days: int = DEFAULT_DAYS, actor: str,
          ip: str = "") -> IssuedToken:
    """A new token for ``user`` in the caller's write transaction (audited)."""
    name = check_request(name, days)
    token = "ddk_" + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=_digest(token), name=name,
                   prefix=token[:PREFIX_LENGTH], created_at=_now(),
                   expires_at=_now() + dt.timedelta(days=days))
    session.add(row)
    session.flush()
    audit.append(session, event_key=f"token-{row.id}-issued", actor=actor,
                 action="token.issued", entity=f"user:{user.id}",
                 data={"token": row.id, "name": name, "prefix": row.prefix,
                       "expires_at": row.expires_at.isoformat(), "ip": ip})
    return IssuedToken(token, row)


# One query for the token, its user and the user's roles (every request makes it), built
# once: building it cost about as much as running it.
_BY_HASH = (select(ApiToken).where(ApiToken.token_hash == bindparam("hash", type_=String))
            .options(joinedload(ApiToken.user).joinedload(User.role_rows)))


def resolve(session: Session, token: str) -> User:
    """The user a Bearer token acts for; 401 naming why not. Commits when it moves
    ``last_used_at`` on."""
    row = session.scalars(_BY_HASH, {"hash": _digest(token)}).unique().one_or_none()
    now = _now()
    if row is None:
        raise Unauthenticated(f"the API token is not known: {_GET_ONE}")
    if row.revoked_at is not None:
        raise Unauthenticated(f"this API token was revoked on {row.revoked_at:%Y-%m-%d %H:%M} "
                              f"UTC: {_GET_ONE}")
    if row.expires_at <= now:
        raise Unauthenticated(f"this API token expired on {row.expires_at:%Y-%m-%d %H:%M} UTC: "
                              f"{_GET_ONE}")
    user = row.user
    if not user.is_active:
        raise Unauthenticated("the account this API token belongs to is deactivated")
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        write_lock(session)
        row.last_used_at = now
        session.commit()
    return user


def tokens_of(session: Session, user_id: int | None = None) -> list[ApiToken]:
    """A user's tokens (everyone's with None), newest first, ended ones included."""
    q = select(ApiToken).order_by(ApiToken.id.desc())
    if user_id is not None:
        q = q.where(ApiToken.user_id == user_id)
    return list(session.scalars(q))


def find(session: Session, id_or_prefix: str) -> ApiToken:
    """A token by its number or by the start of the token (at least ``ddk_`` and 4 more)."""
    text = id_or_prefix.strip()
    if text.isdigit():
        row = session.get(ApiToken, int(text))
        if row is None:
            raise NotFound(f"no API token number {text}")
        return row
    if not text.startswith("ddk_") or len(text) < 8:
        raise Invalid("name a token by its number or by its first characters, e.g. ddk_Ab3x")
    # A whole token matches by its hash; a prefix by the stored start.
    rows = list(session.scalars(select(ApiToken).where(or_(
        ApiToken.token_hash == _digest(text),
        ApiToken.prefix == text[:PREFIX_LENGTH]) if len(text) >= PREFIX_LENGTH
        else ApiToken.prefix.startswith(text, autoescape=True))))
    if not rows:
        raise NotFound(f"no API token starts with {text}")
    if len(rows) > 1:
        raise Invalid(f"{len(rows)} tokens start with {text}: give more characters or the "
                      f"number ({', '.join(str(r.id) for r in rows)})")
    return rows[0]


def revoke(session: Session, row: ApiToken, *, actor: str, via: str) -> bool:
    """Revoke one token in the caller's write transaction; False if it was revoked already."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = _now()
    audit.append(session, event_key=f"token-{row.id}-revoked", actor=actor,
                 action="token.revoked", entity=f"user:{row.user_id}",
                 data={"token": row.id, "name": row.name, "prefix": row.prefix, "via": via})
    return True


def own_token(session: Session, user: User, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"no API token number {token_id} of yours")
    return row


def revoke_all(session: Session, user: User, *, actor: str, via: str) -> int:
    """Revoke every live token of ``user`` in the caller's write transaction; how many."""
    rows = session.scalars(select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > _now()))
    return sum(revoke(session, row, actor=actor, via=via) for row in rows)
