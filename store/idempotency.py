"""Idempotency keys for creates: a client that retries a create (after a timeout, a dropped
connection, a double click) with the same key gets the thing the first request made, never a
second one.

The key row is written in the same transaction as what the create makes, so either both exist
or neither does. A retry finds the row and answers with the same resource; the same key with
a different request is refused (the client is confused, and guessing would be worse).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import ForeignKey, String, UniqueConstraint, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.models import Base, utcnow

MAX_KEY = 200


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "scope", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    scope: Mapped[str] = mapped_column(String(100))
    """What was created: ``quote``, ``envelope``, ``account``…"""
    key: Mapped[str] = mapped_column(String(MAX_KEY))
    request_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KeyReused(Exception):
    """The key was used before for a different request."""


def request_hash(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def earlier(session: Session, user_id: int, scope: str, key: str | None,
            digest: str) -> int | None:
    """The resource an earlier request with this key made, if any (call it inside the write
    transaction, so a concurrent twin waits for the first and then sees its row)."""
    if not key:
        return None
    if session.get_bind().dialect.name == "postgresql":
        # Twins with one key queue here until the first commits (SQLite's writers are
        # serialised by BEGIN IMMEDIATE already), so the second finds the first's row.
        lock = int.from_bytes(hashlib.sha256(f"{user_id}|{scope}|{key}".encode())
                              .digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
    row = session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.user_id == user_id, IdempotencyKey.scope == scope,
        IdempotencyKey.key == key))
    if row is None:
        return None
    if row.request_hash != digest:
        raise KeyReused(f"the Idempotency-Key {key!r} was used before for a different "
                        f"{scope}; use a new key for a new request")
    return row.resource_id


def remember(session: Session, user_id: int, scope: str, key: str | None, digest: str,
             resource_id: int) -> None:
    if key:
        session.add(IdempotencyKey(user_id=user_id, scope=scope, key=key, request_hash=digest,
                                   resource_id=resource_id))
        session.flush()
