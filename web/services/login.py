"""Checking passwords, throttled: the login form, ``POST /api/v1/auth/token`` and the current
password of a password change.

Failed attempts count per account (``account:<email>``, case-insensitive, known or not) and
per client address (``address:<ip>``) in ``login_throttles``, which every web replica shares.
After ``limit`` failures within the window the key locks for 30 s, and each lockout in a row
lasts twice as long as the one before, up to 15 minutes. While a key is locked an attempt
costs one read: no write and no argon2 work. A success clears its account's count and
lockouts, not its address's: signing in to one account must not unlock an address that
guesses at others.

A burst can't outrun the count: passwords are checked on a few hashing cores
(web/services/passwords.py), each attempt looks at the lock again once it has its core, and a
failure is recorded before its core goes to the next attempt. So a burst of parallel guesses
at one account gets ``limit`` argon2 checks per web process (``limit + cores - 1`` at worst),
and parallel *right* passwords (a script fetching tokens from many workers) never lock it.

No transaction is open while argon2 runs, and an unknown email costs what a wrong password
costs (a dummy hash is checked, and the same rows are written).
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store import audit
from store.auth import LoginThrottle
from store.db import write_lock
from store.models import User
from web.errors import Invalid, TooManyTries, Unauthenticated
from web.services import api_tokens, user_sessions
from web.services.passwords import (
    check_new_password,
    hash_password,
    hashing_core,
    password_matches,
)
from web.services.user_sessions import SessionPolicy


@dataclass(frozen=True)
class Throttle:
    account_limit: int = 5
    """Failed attempts at one account within ``window`` before it locks."""
    address_limit: int = 20
    """...from one client address (more: a whole office may share one address)."""
    window: dt.timedelta = dt.timedelta(minutes=15)
    first_lockout: dt.timedelta = dt.timedelta(seconds=30)
    longest_lockout: dt.timedelta = dt.timedelta(minutes=15)
    forget_after: dt.timedelta = dt.timedelta(days=1)
    """Lockouts in a row are forgotten this long after the last one ended."""

    def lockout(self, level: int) -> dt.timedelta:
        """How long the ``level``-th lockout in a row lasts: 30 s, 1 min, 2 min… 15 min."""
        doublings = min(max(level - 1, 0), 20)  # 2**20 × 30 s is far past any cap already
        return min(self.first_lockout * (1 << doublings), self.longest_lockout)


THROTTLE = Throttle()
WRONG = "that email and password don't match"


@dataclass(frozen=True)
class Attempt:
    """One try at a password: the email it names, where it comes from, and the door it used
    (``form``, ``api`` or ``password_change``)."""

    email: str
    ip: str
    user_agent: str
    via: str

    @property
    def normal_email(self) -> str:
        return self.email.strip().lower()[:255]

    def limits(self) -> dict[str, int]:
        """Throttle key → its limit."""
        return {f"account:{self.normal_email}": THROTTLE.account_limit,
                f"address:{self.ip}": THROTTLE.address_limit}


def log_in(session: Session, attempt: Attempt, password: str, policy: SessionPolicy) -> str:
    """A new browser session for the right password (commits); the id for its cookie."""
    user = _check(session, attempt, password)
    write_lock(session)
    _succeeded(session, attempt)
    session_id, row = user_sessions.open_session(session, user, policy, ip=attempt.ip,
                                                 user_agent=attempt.user_agent)
    _audit_login(session, attempt, user, {"session": row.id})
    session.commit()
    return session_id


def token_for_password(session: Session, attempt: Attempt, password: str, *, name: str,
                       days: int) -> api_tokens.IssuedToken:
    """A new API token for the right password (commits)."""
    api_tokens.check_request(name, days)  # refused before it costs a try
    user = _check(session, attempt, password)
    write_lock(session)
    _succeeded(session, attempt)
    issued = api_tokens.issue(session, user, name=name, days=days, actor=user.email,
                              ip=attempt.ip)
    _audit_login(session, attempt, user, {"token": issued.row.id})
    session.commit()
    return issued


def change_password(session: Session, user: User, attempt: Attempt, current: str, new: str,
                    again: str, *, keep_session: int | None) -> int:
    """Set ``user``'s password after checking the current one (throttled like a login), and
    end their other sessions (commits); how many were ended."""
    check_new_password(new, again)
    try:
        checked = _check(session, attempt, current)
    except Unauthenticated:
        raise Invalid("the current password is wrong", field="current_password") from None
    if checked.id != user.id:
        raise Invalid("the current password is wrong", field="current_password")
    new_hash = hash_password(new)  # before the write lock: it takes a tenth of a second
    write_lock(session)
    _succeeded(session, attempt)
    checked.password_hash = new_hash
    ended = user_sessions.revoke_all(session, checked, reason="password_changed",
                                     actor=checked.email, keep=keep_session)
    audit.append(session, event_key=f"password-{checked.id}-{secrets.token_hex(8)}",
                 actor=checked.email, action="password.changed", entity=f"user:{checked.id}",
                 data={"ip": attempt.ip, "sessions_ended": ended})
    session.commit()
    return ended


# ------------------------------------------------------------------ the throttled check
def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check(session: Session, attempt: Attempt, password: str) -> User:
    """The active user whose password this is; else TooManyTries or Unauthenticated (a
    failure is recorded, and commits)."""
    limits = attempt.limits()
    user = session.scalar(select(User).where(func.lower(User.email) == attempt.normal_email))
    _refuse_if_locked(session, limits)  # at once, without queueing for a core
    with hashing_core():
        # Again: the attempts ahead in the queue may have locked the account meanwhile.
        _refuse_if_locked(session, limits)
        matches = password_matches(user.password_hash if user else None, password)
        if user is not None and matches and user.is_active:
            return user
        reason = ("unknown_email" if user is None else "wrong_password" if not matches
                  else "inactive")
        # Recorded before the next attempt gets this core, so that one sees it.
        raise _failed(session, attempt, user, reason)


def _refuse_if_locked(session: Session, limits: dict[str, int]) -> None:
    """TooManyTries if a key is locked; ends the read either way, so no transaction stays
    open while argon2 runs."""
    now = _now()
    rows = session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(limits))
                           .execution_options(populate_existing=True))
    locked = [r for r in rows if _locked(r, now)]
    session.commit()
    if locked:
        raise _too_many(locked, now)


def _failed(session: Session, attempt: Attempt, user: User | None,
            reason: str) -> TooManyTries | Unauthenticated:
    """Count a failed attempt and lock what reached its limit (commits); the error to answer
    with."""
    limits = attempt.limits()
    now = _now()
    write_lock(session)
    rows = _rows_for_update(session, list(limits), now)
    audit.append(session, event_key=f"login-failed-{secrets.token_hex(8)}",
                 actor=attempt.normal_email, action="login.failed",
                 entity=f"user:{user.id}" if user else "user:unknown",
                 data={"email": attempt.normal_email, "ip": attempt.ip, "via": attempt.via,
                       "reason": reason})
    for row in rows:
        _age(row, now)
        if _locked(row, now):  # by an attempt on another replica meanwhile
            continue
        row.failures += 1
        row.updated_at = now
        if row.failures >= limits[row.key]:
            _lock(session, row, attempt, user, now)
    locked = [r for r in rows if _locked(r, now)]
    session.commit()
    return _too_many(locked, now) if locked else Unauthenticated(WRONG)


def _succeeded(session: Session, attempt: Attempt) -> None:
    """In the caller's write transaction: the account starts afresh (its address's count
    stays: signing in to one account must not unlock an address guessing at others)."""
    account, _address = attempt.limits()
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == account))


def _rows_for_update(session: Session, keys: list[str], now: dt.datetime) -> list[LoginThrottle]:
    """The throttle rows of ``keys``, made if missing, locked for this transaction (in key
    order, so two attempts on PostgreSQL never wait for each other crosswise)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(LoginThrottle).values([
        {"key": k, "failures": 0, "window_started_at": now, "lockouts": 0, "updated_at": now}
        for k in keys]).on_conflict_do_nothing(index_elements=["key"]))
    return list(session.scalars(
        select(LoginThrottle).where(LoginThrottle.key.in_(keys)).order_by(LoginThrottle.key)
        .with_for_update().execution_options(populate_existing=True)))


def _locked(row: LoginThrottle, now: dt.datetime) -> bool:
    return row.locked_until is not None and row.locked_until > now


def _age(row: LoginThrottle, now: dt.datetime) -> None:
    """Forget what is too old to count: a window that ended, a run of lockouts long over."""
    if row.lockouts and row.locked_until and row.locked_until + THROTTLE.forget_after <= now:
        row.lockouts = 0
    if not _locked(row, now) and row.window_started_at + THROTTLE.window <= now:
        row.failures = 0
        row.window_started_at = now


def _lock(session: Session, row: LoginThrottle, attempt: Attempt, user: User | None,
          now: dt.datetime) -> None:
    row.lockouts += 1
    wait = THROTTLE.lockout(row.lockouts)
    row.locked_until = now + wait
    # A fresh window starts when the lockout ends.
    row.failures = 0
    row.window_started_at = row.locked_until
    row.updated_at = now
    account = row.key.startswith("account:")
    audit.append(session, event_key=f"login-locked-{secrets.token_hex(8)}", actor="system",
                 action="login.locked",
                 entity=(f"user:{user.id}" if user else "user:unknown") if account
                 else f"address:{attempt.ip}",
                 data={"key": row.key, "until": row.locked_until.isoformat(),
                       "seconds": int(wait.total_seconds()), "lockout": row.lockouts,
                       "ip": attempt.ip})


def _too_many(rows: list[LoginThrottle], now: dt.datetime) -> TooManyTries:
    row = max(rows, key=lambda r: r.locked_until or now)
    seconds = max(1, math.ceil(((row.locked_until or now) - now).total_seconds()))
    whom = "this account" if row.key.startswith("account:") else "your network address"
    return TooManyTries(f"Too many failed sign-in attempts for {whom}. For your security, "
                        f"try again in {wait_text(seconds)}.", retry_after=seconds)


def wait_text(seconds: int) -> str:
    """30 seconds, 2 minutes, 12 hours (rounded up)."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size or (unit == "minute" and seconds >= size):
            count = math.ceil(seconds / size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _audit_login(session: Session, attempt: Attempt, user: User,
                 detail: dict[str, object]) -> None:
    audit.append(session, event_key=f"login-{secrets.token_hex(8)}", actor=user.email,
                 action="login.succeeded", entity=f"user:{user.id}",
                 data={"ip": attempt.ip, "via": attempt.via, **detail})
