"""The tables behind sign-in: server-side sessions and the login throttle's counters (the use
cases are in web/services/user_sessions.py and web/services/login.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, delete, or_
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from store.db import write_lock
from store.models import Base, User, utcnow

KEEP_ENDED_SESSIONS = dt.timedelta(days=30)
"""Ended sessions stay listed this long (the audit trail keeps the facts for good)."""
KEEP_IDLE_THROTTLES = dt.timedelta(days=2)
"""A throttle row untouched this long counts nothing any more (its window and its run of
lockouts are long over): guessed emails must not grow the table for ever."""


class UserSession(Base):
    """One signed-in browser. Its cookie holds a random id; the row holds that id's SHA-256,
    so a copy of the table signs nobody in. Revoking the row ends the session at once."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    """Moved on by requests at most once a minute; the idle timeout counts from it."""
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    """The absolute end, however active the session."""
    revoked_at: Mapped[dt.datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    """logout, signed_out, password_changed or signed_out_by_admin."""
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(400), default="")

    user: Mapped[User] = relationship(lazy="joined")


class LoginThrottle(Base):
    """Failed sign-ins of one account (``account:<email>``) or one client address
    (``address:<ip>``) in the current window, and the lockout they earned."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    """Failed attempts in the window, counting those still being checked."""
    window_started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    """Lockouts in a row: each lasts twice as long as the one before, up to a cap."""
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


def prune(session: Session, now: dt.datetime | None = None) -> tuple[int, int]:
    """Delete sessions long over and throttle rows long idle (commits); how many of each."""
    now = now or dt.datetime.now(dt.UTC)
    write_lock(session)
    ended = session.execute(delete(UserSession).where(or_(
        UserSession.expires_at < now - KEEP_ENDED_SESSIONS,
        UserSession.revoked_at < now - KEEP_ENDED_SESSIONS)))
    idle = session.execute(delete(LoginThrottle).where(
        LoginThrottle.updated_at < now - KEEP_IDLE_THROTTLES,
        or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now)))
    session.commit()
    return ended.rowcount, idle.rowcount  # type: ignore[attr-defined]
