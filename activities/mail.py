"""Outgoing mail: an outbox row per (notice, recipient), then SMTP when configured.

The outbox row's unique key makes a retried activity a no-op for mail already queued, and
``sent_at`` is set right after the SMTP server accepts the message. With no SMTP host the
outbox is the delivery (read it at /dev/mail).
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from documents.filenames import safe_filename
from store.blobs import BlobStore
from store.db import write_lock
from store.models import OutboxMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    username: str = ""
    password: str = ""
    starttls: bool = False
    sender: str = "dealdesk@localhost"

    def __repr__(self) -> str:  # never print the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, sender={self.sender!r})"


class Mailer:
    def __init__(self, sessions: sessionmaker[Session], smtp: SmtpConfig | None,
                 blobs: BlobStore | None = None) -> None:
        self._sessions = sessions
        self._smtp = smtp
        self._blobs = blobs  # where attachments' bytes are

    def queue(self, key: str, to_addr: str, subject: str, body: str) -> int:
        """Insert the outbox row unless it exists; return its id."""
        with self._sessions() as s:
            write_lock(s)
            existing = s.scalar(select(OutboxMessage.id).where(OutboxMessage.message_key == key))
            if existing is not None:
                return existing
            msg = OutboxMessage(message_key=key, to_addr=to_addr, subject=subject, body=body)
            s.add(msg)
            try:
                s.commit()
            except IntegrityError:  # a concurrent retry queued it first
                s.rollback()
                found = s.scalar(select(OutboxMessage.id)
                                 .where(OutboxMessage.message_key == key))
                assert found is not None
                return found
            return msg.id

    def deliver(self, message_id: int) -> None:
        if self._smtp is None:
            return
        with self._sessions() as s:
            msg = s.get(OutboxMessage, message_id)
            if msg is None or msg.sent_at is not None:
                return
            email = EmailMessage()
            email["From"] = self._smtp.sender
            email["To"] = msg.to_addr
            email["Subject"] = msg.subject
            email["Message-ID"] = f"<{msg.message_key.replace(':', '.')}@dealdesk>"
            email.set_content(msg.body)
            for a in msg.attachments:
                if self._blobs is None:
                    raise RuntimeError("this mailer has no blob store for attachments")
                maintype, _, subtype = a["content_type"].partition("/")
                # Names come from uploads: whatever a row holds, none carries a path or
                # bidi/control characters into the recipient's mail client.
                email.add_attachment(self._blobs.get(a["sha256"]), maintype=maintype,
                                     subtype=subtype,
                                     filename=safe_filename(a["filename"], "attachment"))
            try:
                with smtplib.SMTP(self._smtp.host, self._smtp.port, timeout=20) as smtp:
                    if self._smtp.starttls:
                        smtp.starttls()
                    if self._smtp.username:
                        smtp.login(self._smtp.username, self._smtp.password)
                    smtp.send_message(email)
            except (OSError, smtplib.SMTPException) as e:
                write_lock(s)
                msg.last_error = str(e)[:500]
                s.commit()
                log.warning("mail to %s failed: %s", msg.to_addr, type(e).__name__)
                raise
            # The read above is a snapshot that may be stale by now (on SQLite, upgrading it
            # to a write fails at once with "database is locked", and the retried activity
            # would send the mail again): record it in a write transaction of its own.
            write_lock(s)
            msg.sent_at = dt.datetime.now(dt.UTC)
            msg.last_error = None
            s.commit()

    def deliver_unsent(self, key_prefix: str) -> None:
        """Deliver every outbox row whose key starts with ``key_prefix`` and that isn't sent
        yet: what this activity queued, and what an earlier attempt of it queued but did not
        deliver (it died between its commit and the delivery)."""
        if self._smtp is None:
            return
        with self._sessions() as s:
            ids = list(s.scalars(select(OutboxMessage.id).where(
                OutboxMessage.message_key.startswith(key_prefix, autoescape=True),
                OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id)))
        for message_id in ids:
            self.deliver(message_id)
