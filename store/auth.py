"""The tables behind sign-in: server-side sessions and the login throttle's counters (the use
cases are in web/services/user_sessions.py and web/services/login.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models import Base, User, utcnow


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
