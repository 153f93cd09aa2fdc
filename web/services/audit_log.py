"""Reading the audit log: filtered by entity (either spelling) and actor, a page at a time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from store import audit
from store.models import AuditEvent
from store.who import Who

PAGE = 100


@dataclass(frozen=True)
class Row:
    """One row as pages show it: ``who`` from the structured actor, or the old label."""

    id: int
    at: dt.datetime
    who: str
    actor: Who | None
    label: str
    action: str
    entity: str
    data: dict[str, Any]
    row_hash: str

    @classmethod
    def of(cls, ev: AuditEvent) -> Row:
        actor = audit.who_of(ev)
        return cls(ev.id, ev.at, actor.display if actor else ev.actor, actor, ev.actor,
                   ev.action, ev.entity, ev.data, ev.row_hash)


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    """Newest first."""
    newer: int | None
    """``after`` for the page of newer rows, if there are any."""
    older: int | None
    """``before`` for the page of older rows, if there are any."""


def _filters(session: Session, entity: str | None, actor: str | None
             ) -> list[ColumnElement[bool]]:
    where = []
    if entity and entity.strip():
        where.append(audit.entity_clause(entity))
    if actor and actor.strip():
        where.append(audit.actor_clause(session, actor))
    return where


def events(session: Session, *, entity: str | None = None, actor: str | None = None,
           after: int = 0, limit: int = 200) -> list[AuditEvent]:
    """Rows after ``after``, oldest first (the API's order: page on with the last id)."""
    q = select(AuditEvent).where(AuditEvent.id > after, *_filters(session, entity, actor))
    return list(session.scalars(q.order_by(AuditEvent.id).limit(limit)))


def page(session: Session, *, entity: str | None = None, actor: str | None = None,
         before: int | None = None, after: int | None = None) -> Page:
    """A hundred rows, newest first: the latest, those before ``before``, or the hundred
    just after ``after``."""
    where = _filters(session, entity, actor)
    q = select(AuditEvent).where(*where)
    if after is not None:
        found = list(session.scalars(q.where(AuditEvent.id > after)
                                     .order_by(AuditEvent.id).limit(PAGE)))[::-1]
    else:
        if before is not None:
            q = q.where(AuditEvent.id < before)
        found = list(session.scalars(q.order_by(AuditEvent.id.desc()).limit(PAGE)))
    if not found:
        return Page([], None, None)

    def any_where(*more: ColumnElement[bool]) -> bool:
        return session.scalar(select(AuditEvent.id).where(*where, *more).limit(1)) is not None

    newest, oldest = found[0].id, found[-1].id
    return Page([Row.of(ev) for ev in found],
                newer=newest if any_where(AuditEvent.id > newest) else None,
                older=oldest if any_where(AuditEvent.id < oldest) else None)
