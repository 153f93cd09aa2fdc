"""Mail delivery over real SMTP (aiosmtpd in-process): outbox rows are delivered once, a
retry never sends twice, and a dead SMTP server leaves the row queued with its error."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.mail import Mailer, SmtpConfig
from dealdesk.devserver import free_port
from store.models import OutboxMessage


class Inbox(Message):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.received: list[bytes] = []

    def handle_message(self, message: object) -> None:
        self.received.append(bytes(message))  # type: ignore[call-overload]

    def prepare_message(self, session: object, envelope: object) -> bytes:
        return bytes(envelope.content)  # type: ignore[attr-defined]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def test_outbox_delivers_once(sessions: sessionmaker[Session], smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mailer = Mailer(sessions, SmtpConfig("127.0.0.1", port, sender="dealdesk@test"))
    first = mailer.queue("task-1:assigned:7", "ann@example.test", "Needs you", "Body")
    again = mailer.queue("task-1:assigned:7", "ann@example.test", "Needs you", "Body")
    assert first == again
    mailer.deliver(first)
    mailer.deliver(first)  # a retried activity
    assert len(inbox.received) == 1
    msg = message_from_bytes(inbox.received[0])
    assert msg["To"] == "ann@example.test" and msg["Subject"] == "Needs you"
    with sessions() as s:
        row = s.scalar(select(OutboxMessage))
        assert row is not None and row.sent_at is not None and row.last_error is None


def test_unreachable_smtp_keeps_the_message_queued(sessions: sessionmaker[Session]) -> None:
    mailer = Mailer(sessions, SmtpConfig("127.0.0.1", free_port()))
    mid = mailer.queue("k", "bob@example.test", "s", "b")
    with pytest.raises(OSError):
        mailer.deliver(mid)
    with sessions() as s:
        row = s.get(OutboxMessage, mid)
        assert row is not None and row.sent_at is None and row.last_error


def test_password_never_in_repr() -> None:
    assert "hunter2" not in repr(SmtpConfig("h", 25, "u", "hunter2"))
