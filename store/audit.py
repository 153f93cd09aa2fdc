"""The hash-chained audit log.

Each row stores ``prev_hash`` (the previous row's hash) and ``row_hash`` =
sha256(prev_hash + canonical JSON of the row's own content). Rows are appended in the
same transaction as the change they record; :func:`append` is idempotent by ``event_key``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _content(event_key: str, at: dt.datetime, actor: str, action: str, entity: str,
             data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_key": event_key,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "entity": entity,
        "data": data,
    }


def row_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(content)).encode()).hexdigest()


def append(
    session: Session,
    *,
    event_key: str,
    actor: str,
    action: str,
    entity: str,
    data: dict[str, Any],
    at: dt.datetime | None = None,
) -> AuditEvent | None:
    """Append one event inside the caller's transaction; None if the key was already written."""
    if session.scalar(select(AuditEvent.id).where(AuditEvent.event_key == event_key)):
        return None
    head = session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    if head is None:
        head = AuditHead(id=1, last_hash=GENESIS)
        session.add(head)
    at = at or dt.datetime.now(dt.UTC)
    data = json.loads(canonical_json(data))  # exactly what will be read back
    content = _content(event_key, at, actor, action, entity, data)
    event = AuditEvent(
        event_key=event_key, at=at, actor=actor, action=action, entity=entity, data=data,
        prev_hash=head.last_hash, row_hash=row_hash(head.last_hash, content),
    )
    head.last_hash = event.row_hash
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    bad_row_id: int | None = None
    problem: str = ""


def _rows(session: Session) -> Iterator[AuditEvent]:
    last = 0
    while True:
        batch = session.scalars(
            select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(1000)
        ).all()
        if not batch:
            return
        yield from batch
        last = batch[-1].id


def verify(session: Session) -> VerifyResult:
    """Walk the chain from the first row; report the first row whose hash or link is wrong."""
    prev = GENESIS
    count = 0
    for ev in _rows(session):
        count += 1
        if ev.prev_hash != prev:
            return VerifyResult(False, count, ev.id, "its prev_hash does not match the row before")
        content = _content(ev.event_key, ev.at, ev.actor, ev.action, ev.entity, ev.data)
        if row_hash(prev, content) != ev.row_hash:
            return VerifyResult(False, count, ev.id, "its content does not match its hash")
        prev = ev.row_hash
    head = session.get(AuditHead, 1)
    if head is not None and head.last_hash != prev:
        return VerifyResult(False, count, None, "the chain head does not match the last row")
    return VerifyResult(True, count)
