"""Server-side sign-in sessions (``user_sessions``).

The browser's cookie holds a random session id; the row holds its SHA-256, whose user it is,
and whether it still counts: not revoked, not past its absolute end, not idle for longer than
the idle timeout. Logging out, a password change or an admin's "sign out everywhere" revoke
rows, so a copied or replayed cookie stops working at once. Requests move ``last_seen_at`` on
at most once a minute, which keeps the write load of busy pages (the inbox badge polls every
20 s) to one short write per session a minute.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import String, bindparam, func, select, update
from sqlalchemy.orm import Session, joinedload

from dealdesk.settings import Settings
from store import audit
from store.auth import UserSession
from store.db import write_lock
from store.models import User
from web.errors import NotFound
from web.services import api_tokens

TOUCH_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class SessionPolicy:
    idle: dt.timedelta
    """A session ends after this long without a request."""
    lifetime: dt.timedelta
    """...and at the latest this long after the login."""

    @classmethod
    def of(cls, settings: Settings) -> SessionPolicy:
        return cls(dt.timedelta(minutes=settings.session_idle_minutes),
                   dt.timedelta(days=settings.session_max_days))


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def open_session(session: Session, user: User, policy: SessionPolicy, *, ip: str,
                 user_agent: str) -> tuple[str, UserSession]:
    """A new session for ``user`` in the caller's transaction: the id for the cookie (shown
    only here) and the row."""
    session_id = secrets.token_urlsafe(32)
    now = _now()
    row = UserSession(id_hash=_digest(session_id), user_id=user.id, created_at=now,
                      last_seen_at=now, expires_at=now + policy.lifetime, ip=ip[:64],
                      user_agent=user_agent[:400])
    session.add(row)
    session.flush()
    return session_id, row


def _live(row: UserSession, policy: SessionPolicy, now: dt.datetime) -> bool:
    return (row.revoked_at is None and row.expires_at > now
            and row.last_seen_at + policy.idle > now and row.user.is_active)


# One query for the session, its user and the user's roles (every request makes it), built
# once: building it cost about as much as running it.
_BY_HASH = (select(UserSession).where(UserSession.id_hash == bindparam("hash", type_=String))
            .options(joinedload(UserSession.user).joinedload(User.role_rows)))


def resolve(session: Session, session_id: str, policy: SessionPolicy) -> UserSession | None:
    """The live session with this id (its user loaded), or None. Commits when it moves
    ``last_seen_at`` on."""
    row = session.scalars(_BY_HASH, {"hash": _digest(session_id)}).unique().one_or_none()
    now = _now()
    if row is None or not _live(row, policy, now):
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        write_lock(session)
        # Guarded, so of two requests at the minute's turn only one writes.
        session.execute(update(UserSession).where(
            UserSession.id == row.id, UserSession.last_seen_at < now - TOUCH_EVERY / 2)
            .values(last_seen_at=now).execution_options(synchronize_session=False))
        session.commit()
    return row


def live_sessions(session: Session, user_id: int, policy: SessionPolicy) -> list[UserSession]:
    """The user's sessions that still count, most recently used first."""
    now = _now()
    rows = session.scalars(select(UserSession).where(
        UserSession.user_id == user_id, UserSession.revoked_at.is_(None),
        UserSession.expires_at > now, UserSession.last_seen_at > now - policy.idle)
        .order_by(UserSession.last_seen_at.desc()))
    return list(rows)


def live_counts(session: Session, policy: SessionPolicy) -> dict[int, int]:
    """User id → how many live sessions (for the users page)."""
    now = _now()
    rows = session.execute(select(UserSession.user_id, func.count()).where(
        UserSession.revoked_at.is_(None), UserSession.expires_at > now,
        UserSession.last_seen_at > now - policy.idle).group_by(UserSession.user_id))
    return {user_id: count for user_id, count in rows}


def log_out(session: Session, session_id: str, *, ip: str) -> None:
    """End the session behind a cookie (commits); nothing to do if it is over already."""
    write_lock(session)
    row = session.scalar(select(UserSession).where(UserSession.id_hash == _digest(session_id)))
    if row is None or row.revoked_at is not None:
        session.rollback()
        return
    _revoke(row, "logout")
    audit.append(session, event_key=f"session-{row.id}-logout", actor=row.user.email,
                 action="logout", entity=f"user:{row.user_id}",
                 data={"session": row.id, "ip": ip})
    session.commit()


def sign_out(session: Session, user: User, session_row_id: int) -> None:
    """``user`` ends one of their own sessions (from the account page), in the caller's
    write transaction."""
    row = session.get(UserSession, session_row_id)
    if row is None or row.user_id != user.id:
        raise NotFound("no such session of yours: it may have ended already")
    if row.revoked_at is not None:
        return
    _revoke(row, "signed_out")
    audit.append(session, event_key=f"session-{row.id}-signed-out", actor=user.email,
                 action="session.revoked", entity=f"user:{user.id}",
                 data={"session": row.id, "reason": "signed_out"})


def revoke_all(session: Session, user: User, *, reason: str, actor: str,
               keep: int | None = None) -> int:
    """End every session of ``user`` (but ``keep``, the caller's own) in the caller's write
    transaction; how many were ended."""
    now = _now()
    q = select(UserSession).where(UserSession.user_id == user.id,
                                  UserSession.revoked_at.is_(None), UserSession.expires_at > now)
    if keep is not None:
        q = q.where(UserSession.id != keep)
    rows = list(session.scalars(q))
    for row in rows:
        _revoke(row, reason, now)
    if rows:
        audit.append(session, event_key=f"sessions-revoked-{secrets.token_hex(8)}", actor=actor,
                     action="sessions.revoked", entity=f"user:{user.id}",
                     data={"sessions": [r.id for r in rows], "reason": reason})
    return len(rows)


def sign_out_everywhere(session: Session, user: User, *, tokens: bool,
                        actor: str) -> tuple[int, int]:
    """An admin ends every session of ``user`` and, if asked, revokes their API tokens, in
    the caller's write transaction; how many of each."""
    ended = revoke_all(session, user, reason="signed_out_by_admin", actor=actor)
    revoked = api_tokens.revoke_all(session, user, actor=actor, via="sign out everywhere") \
        if tokens else 0
    return ended, revoked


def _revoke(row: UserSession, reason: str, now: dt.datetime | None = None) -> None:
    row.revoked_at = now or _now()
    row.revoked_reason = reason
