"""The signing page's rules, for a recipient without an account.

A signing link is ``/sign/{token}``; only ``sha256(token)`` is stored. The token scopes
everything to one recipient of one envelope: whatever a form posts, a link acts only as the
recipient it was issued to. Turn order is the workflow's business (its Update validators
refuse out-of-turn actions); this module only decides what to *show*.

Errors (all :mod:`web.errors`): an unknown link is ``NotFound``; an expired link or an ended
envelope ``Gone``; a wrong code ``Invalid``; five wrong codes lock the recipient out for
fifteen minutes (``TooManyTries``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.envelopes import add_event, recipient_who, token_hash
from store import audit
from store.audit import entity
from store.db import write_lock
from store.models import Envelope, EnvelopeRecipient
from web.errors import Gone, Invalid, NotFound, TooManyTries

LOCK_AFTER = 5
LOCK_FOR = dt.timedelta(minutes=15)
OTP_TTL = dt.timedelta(minutes=10)
OTP_RESEND_AFTER = dt.timedelta(seconds=30)
MAX_DRAWING = 200 * 1024
PAGE_DPI = 80
SESSION_KEY = "signer_verified"  # recipient ids this browser has passed the gate for
_PNG_URL = "data:image/png;base64,"
_hasher = PasswordHasher()

ENDED = {
    "completed": "This envelope is complete: everyone has signed. The signed document was "
                 "emailed to every recipient.",
    "declined": "This envelope was declined, so it can no longer be signed.",
    "voided": "The sender voided this envelope, so it can no longer be signed.",
    "expired": "This signing link has expired. Ask the sender to send the document again.",
}


class LinkEnded(Gone):
    """The link was real but is over; ``why`` is expired, completed, declined or voided."""

    def __init__(self, why: str) -> None:
        super().__init__(ENDED[why])
        self.why = why


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------ the link
def open_link(session: Session, token: str) -> EnvelopeRecipient:
    """The recipient a token belongs to, or NotFound / LinkEnded."""
    r = None
    if 20 <= len(token) <= 100:
        r = session.scalar(select(EnvelopeRecipient).where(
            EnvelopeRecipient.link_token_hash == token_hash(token)))
    if r is None:
        raise NotFound("This signing link is not valid")
    env = session.get(Envelope, r.envelope_id)
    assert env is not None
    if env.status != "sent":
        raise LinkEnded(env.status if env.status in ENDED else "expired")
    if (r.link_expires_at and r.link_expires_at <= now()) or env.expires_at <= now():
        raise LinkEnded("expired")
    return r


def waiting_on(env: Envelope) -> list[EnvelopeRecipient]:
    """The current routing group's signers and approvers who have not acted yet."""
    if env.status != "sent":
        return []
    actors = [r for r in env.recipients if r.role != "cc"]
    open_orders = [r.routing_order for r in actors if r.status not in ("signed", "declined")]
    if not open_orders:
        return []
    current = min(open_orders)
    return [r for r in actors if r.routing_order == current
            and r.status not in ("signed", "declined")]


def is_turn(env: Envelope, r: EnvelopeRecipient) -> bool:
    """Whether the page should offer this recipient the Sign button now."""
    return r.status in ("sent", "viewed") and r in waiting_on(env)


def days_waiting(since: dt.datetime | None) -> int | None:
    return None if since is None else max(0, (now() - since).days)


# ------------------------------------------------------------------ identity gate
def passed_gate(browser: dict[str, object], r: EnvelopeRecipient) -> bool:
    if r.auth_method == "none":
        return True
    verified = browser.get(SESSION_KEY)
    return r.verified_at is not None and isinstance(verified, list) and r.id in verified


def lock_error(r: EnvelopeRecipient) -> TooManyTries | None:
    """The lockout, while it lasts, as the error to show."""
    try:
        _check_lock(r)
    except TooManyTries as e:
        return e
    return None


def _check_lock(r: EnvelopeRecipient) -> None:
    if r.locked_until and r.locked_until > now():
        minutes = max(1, round((r.locked_until - now()).total_seconds() / 60))
        raise TooManyTries(f"Too many wrong codes. For your security, try again after "
                           f"{r.locked_until:%H:%M} UTC (in about {minutes} minute"
                           f"{'s' if minutes != 1 else ''}).", field="code")


def _code_ok(r: EnvelopeRecipient, code: str) -> bool:
    """Blocking (argon2): call on a worker thread."""
    code = code.strip()
    if r.auth_method == "access_code":
        try:
            return bool(r.access_code_hash) and _hasher.verify(r.access_code_hash or "", code)
        except (VerificationError, InvalidHashError):
            return False
    if r.otp_hash is None or r.otp_expires_at is None or r.otp_expires_at <= now():
        return False
    return hmac.compare_digest(r.otp_hash, otp_hash(r.id, code))


def otp_hash(recipient_id: int, code: str) -> str:
    return hashlib.sha256(f"{recipient_id}:{code}".encode()).hexdigest()


def check_code(session: Session, env: Envelope, r: EnvelopeRecipient, code: str,
               browser: dict[str, object], ip: str, user_agent: str) -> None:
    """Verify an access code or emailed code; on success mark this browser. Commits."""
    write_lock(session)
    session.refresh(r)
    _check_lock(r)
    if r.auth_method == "email_otp" and (r.otp_hash is None or r.otp_expires_at is None
                                         or r.otp_expires_at <= now()):
        session.rollback()
        raise Invalid("That code has expired or was never sent: send yourself a new one",
                      field="code")
    if not code.strip():
        session.rollback()
        raise Invalid("Enter the code", field="code")
    if not _code_ok(r, code):
        r.failed_attempts += 1
        if r.failed_attempts >= LOCK_AFTER:
            r.failed_attempts = 0
            r.locked_until = now() + LOCK_FOR
            # On the certificate of completion too: the link was locked, from where.
            add_event(session, env, "locked", recipient_who(r),
                      key=f"{r.id}:locked:{r.locked_until.isoformat()}", recipient=r, ip=ip,
                      user_agent=user_agent, auth_method=r.auth_method,
                      detail={"locked_until": r.locked_until.isoformat(),
                              "wrong_codes": LOCK_AFTER})
            session.commit()
            _check_lock(r)
        audit.append(session, event_key=f"envelope-{env.id}:{r.id}:wrong-code:"
                     f"{secrets.token_hex(8)}", actor=recipient_who(r),
                     action="envelope.code_rejected", entity=entity("envelope", env.id),
                     data={"recipient": r.email, "ip": ip, "auth": r.auth_method,
                           "attempt": r.failed_attempts})
        left = LOCK_AFTER - r.failed_attempts
        session.commit()
        raise Invalid(f"That code is not right. {left} tr{'ies' if left != 1 else 'y'} left "
                      "before a 15-minute lock.", field="code")
    r.failed_attempts, r.locked_until, r.verified_at = 0, None, now()
    r.otp_hash = r.otp_expires_at = None
    add_event(session, env, "verified", recipient_who(r),
              key=f"{r.id}:verified:{secrets.token_hex(4)}", recipient=r, ip=ip,
              user_agent=user_agent, auth_method=r.auth_method)
    session.commit()
    seen = browser.get(SESSION_KEY)
    ids = [i for i in seen if isinstance(i, int)] if isinstance(seen, list) else []
    browser[SESSION_KEY] = [*ids[-19:], r.id]


def new_otp(session: Session, env: Envelope, r: EnvelopeRecipient) -> tuple[str, str, str]:
    """Store a fresh 6-digit code's hash; returns (message key, subject, body) of its mail.
    Commits."""
    write_lock(session)
    session.refresh(r)
    _check_lock(r)
    if r.otp_expires_at and r.otp_expires_at - OTP_TTL + OTP_RESEND_AFTER > now():
        session.rollback()
        raise Invalid("A code was sent less than 30 seconds ago: check your inbox (and spam "
                      "folder) before asking for another", field="code")
    code = f"{secrets.randbelow(10**6):06d}"
    r.otp_hash, r.otp_expires_at = otp_hash(r.id, code), now() + OTP_TTL
    message_key = f"envelope-{env.id}:{r.id}:otp:{secrets.token_hex(6)}"
    audit.append(session, event_key=message_key, actor=recipient_who(r),
                 action="envelope.code_sent", entity=entity("envelope", env.id),
                 data={"recipient": r.email, "expires_at": r.otp_expires_at.isoformat()})
    session.commit()
    body = (f"Your code to open {env.title!r} is {code}\n\nIt expires in 10 minutes. If you "
            "did not ask for it, you can ignore this email.")
    return message_key, f"Your code for {env.title}", body


# ------------------------------------------------------------------ reading and signing
def record_view(session: Session, env: Envelope, r: EnvelopeRecipient, ip: str,
                user_agent: str) -> None:
    """The first look at the document: an event, viewed_at, and status viewed. Commits."""
    if r.viewed_at is not None:
        return
    write_lock(session)
    session.refresh(r)
    if r.viewed_at is None:
        r.viewed_at = now()
        if r.status == "sent":
            r.status = "viewed"
        add_event(session, env, "viewed", recipient_who(r), key=f"{r.id}:viewed",
                  recipient=r, ip=ip, user_agent=user_agent, auth_method=r.auth_method)
    session.commit()


def drawing_png(data_url: str) -> bytes | None:
    """The drawn signature's PNG bytes (None when nothing was drawn), or Invalid."""
    data_url = data_url.strip()
    if not data_url:
        return None
    if not data_url.startswith(_PNG_URL) or len(data_url) > MAX_DRAWING * 4 // 3 + 64:
        raise Invalid("The drawn signature must be a PNG under 200 KB: clear it and draw "
                      "again", field="drawing")
    try:
        raw = base64.b64decode(data_url[len(_PNG_URL):], validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("The drawn signature could not be read: clear it and draw again",
                      field="drawing") from None
    if len(raw) > MAX_DRAWING or not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        raise Invalid("The drawn signature must be a PNG under 200 KB: clear it and draw "
                      "again", field="drawing")
    return raw


def page_png(pdf: Path, cache: Path, page: int, timeout: float = 30) -> Path:
    """Page ``page`` (1-based) of ``pdf`` as a PNG at 80 dpi, rendered once by poppler's
    pdftoppm into ``cache``. Blocking: call on a worker thread."""
    out = cache / f"{page}.png"
    if out.exists():
        return out
    program = shutil.which("pdftoppm")
    if program is None:
        raise RuntimeError("pdftoppm (poppler-utils) is not installed")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        prefix = Path(tmp) / "page"
        subprocess.run(  # noqa: S603 - fixed program and arguments, our own files
            [program, "-png", "-r", str(PAGE_DPI), "-f", str(page), "-l", str(page),
             "-singlefile", str(pdf), str(prefix)],
            check=True, timeout=timeout, capture_output=True)
        os.replace(prefix.with_suffix(".png"), out)
    return out
