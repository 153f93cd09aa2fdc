"""The hash-chained audit log, and its vocabulary.

Each row stores ``prev_hash`` (the previous row's hash) and ``row_hash`` =
sha256(prev_hash + canonical JSON of the row's own content). Rows are appended in the
same transaction as the change they record; :func:`append` is idempotent by ``event_key``.
Each row is also the next leaf of the transparency log (store/transparency.py: a Merkle
tree with signed heads and O(log n) proofs), written by :func:`append` under the same lock.

**Who** acted is a :class:`store.who.Who` (a user, a system process, or an envelope
recipient), kept in the ``actor_*`` columns beside the ``actor`` label computed from it. The
hashed content of such a row carries it under a ``who`` key; rows written before the
structured actor existed have no kind and hash exactly as they always did, so one chain holds
both and :func:`verify` checks both.

**What** it is about is an entity named ``kind:id`` (:func:`entity`): ``quote:12``,
``envelope:7``, ``user:3``, ``invoice:INV-2026-000001``. Older rows spelled some ``quote-12``
or ``user-3`` and can't be rewritten (they are hashed), so every reader filters through
:func:`entity_clause`, which matches both spellings.

Callers that still pass ``actor`` as a plain string keep working: it is read by
:meth:`Who.parse` (an email or ``Name <email>`` becomes that user, found by email; anything
else a system process of that name).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from store.models import AuditEvent, AuditHead, User
from store.who import Kind, Who

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _content(event_key: str, at: dt.datetime, actor: str, action: str, entity: str,
             data: dict[str, Any], who: Who | None = None) -> dict[str, Any]:
    content = {
        "event_key": event_key,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "entity": entity,
        "data": data,
    }
    if who is not None:  # only rows with a structured actor: older rows hash as before
        content["who"] = who.hashed()
    return content


def content_of(ev: AuditEvent) -> dict[str, Any]:
    """What a stored row's hash covers, read back from its columns."""
    return _content(ev.event_key, ev.at, ev.actor, ev.action, ev.entity, ev.data, who_of(ev))


def who_of(ev: AuditEvent) -> Who | None:
    """The structured actor of a row (None for rows written before it existed)."""
    if ev.actor_kind is None:
        return None
    # Taken as stored, even a kind no writer uses: the hash then tells.
    return Who(cast(Kind, ev.actor_kind), ev.actor_user_id, ev.actor_email or "",
               ev.actor_name or "", ev.actor_process or "")


def resolved(session: Session, who: Who) -> Who:
    """A person named by email or by id only, completed from the users table."""
    if who.kind != "user" or (who.user_id is not None and who.email):
        return who
    if who.user_id is not None:
        row = session.execute(select(User.email, User.name).where(
            User.id == who.user_id)).first()
        return Who("user", who.user_id, row.email, who.name or row.name) if row else who
    if who.email:
        found = session.execute(select(User.id, User.email, User.name).where(
            func.lower(User.email) == who.email.lower())).first()
        if found:
            return Who("user", found.id, found.email, who.name or found.name)
    return who


# --- entities: kind:id ---------------------------------------------------------------------

ENTITY_KINDS = ("quote-template", "envelope", "account", "catalog", "invoice", "product",
                "policy", "quote", "user")
"""Longest first: an old spelling ``quote-template-4`` is a template, not quote ``template-4``."""


def entity(kind: str, key: object) -> str:
    """The one spelling of what a row is about: ``quote:12``, ``invoice:INV-2026-000001``."""
    return f"{kind}:{key}"


def entity_spellings(name: str) -> tuple[str, ...]:
    """Every spelling rows may carry for ``name``, given either way (``quote-12`` or
    ``quote:12``): the new one first, then the old ``kind-id`` one."""
    name = name.strip()
    if ":" in name:
        kind, key = name.split(":", 1)
        return (name, f"{kind}-{key}")
    for kind in ENTITY_KINDS:
        if name.startswith(kind + "-"):
            return (entity(kind, name[len(kind) + 1:]), name)
    return (name,)


def entity_clause(name: str) -> ColumnElement[bool]:
    """Rows about ``name`` in either spelling. A bare kind (``quote-template``, ``catalog``:
    the old rows of those carried no id) matches every row of that kind."""
    name = name.strip()
    if name in ENTITY_KINDS:
        return or_(AuditEvent.entity == name,
                   AuditEvent.entity.startswith(name + ":", autoescape=True))
    return AuditEvent.entity.in_(entity_spellings(name))


def actor_clause(session: Session, text: str) -> ColumnElement[bool]:
    """Rows by an actor named by email, name or process (part of it will do), including
    the old free-text labels: a user found by that email also matches by id, and in the
    approval chain's old ``Name (user 7)`` form."""
    text = text.strip()
    clauses = [func.lower(AuditEvent.actor).contains(text.lower(), autoescape=True)]
    user_id = session.scalar(select(User.id).where(func.lower(User.email) == text.lower()))
    if user_id is not None:
        clauses += [AuditEvent.actor_user_id == user_id,
                    AuditEvent.actor.endswith(f"(user {user_id})")]
    return or_(*clauses)


def row_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(content)).encode()).hexdigest()


def append(
    session: Session,
    *,
    event_key: str,
    actor: Who | str,
    action: str,
    entity: str,
    data: dict[str, Any],
    at: dt.datetime | None = None,
) -> AuditEvent | None:
    """Append one event inside the caller's transaction; None if the key was already written.

    ``actor`` is a :class:`Who`; a plain string is read by :meth:`Who.parse`. A user given
    by email or id only is completed (id, email, name) from the users table.
    """
    if session.scalar(select(AuditEvent.id).where(AuditEvent.event_key == event_key)):
        return None
    head = session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    if head is None:
        head = AuditHead(id=1, last_hash=GENESIS)
        session.add(head)
    at = at or dt.datetime.now(dt.UTC)
    data = json.loads(canonical_json(data))  # exactly what will be read back
    who = resolved(session, Who.parse(actor) if isinstance(actor, str) else actor)
    event = AuditEvent(
        event_key=event_key, at=at, actor=who.label, action=action, entity=entity, data=data,
        actor_kind=who.kind, actor_user_id=who.user_id, actor_email=who.email or None,
        actor_name=who.name or None, actor_process=who.process or None,
        prev_hash=head.last_hash,
    )
    event.row_hash = row_hash(head.last_hash, content_of(event))
    head.last_hash = event.row_hash
    event.leaf_index = head.tree_size or 0  # a head made just now has no default yet
    head.tree_size = event.leaf_index + 1
    session.add(event)
    session.flush()
    # Imported here: store.transparency reads rows through this module.
    from store.transparency import add_leaf, leaf_bytes

    add_leaf(session, event.leaf_index, leaf_bytes(event))
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
        if row_hash(prev, content_of(ev)) != ev.row_hash:
            return VerifyResult(False, count, ev.id, "its content does not match its hash")
        prev = ev.row_hash
    head = session.get(AuditHead, 1)
    if head is not None and head.last_hash != prev:
        return VerifyResult(False, count, None, "the chain head does not match the last row")
    return VerifyResult(True, count)
