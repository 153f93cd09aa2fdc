"""Closed workflow runs' histories, kept for as long as the audit needs them.

Temporal deletes a closed run's history after the namespace's retention (the compose file
sets 30 days); auditors need a deal's histories for years, to see what happened and to
replay it on today's code (``workflows/replay_check.py``). So each closed run's history is
copied here once: one row per run (``run_id`` is unique, so two sweeps racing on a run store
it once), holding the history JSON zlib-compressed, its SHA-256 (of the JSON: what the row
vouches for, checked on every read), the run's workflow, type, deal, close time and event
count, written with one audit row (``workflow.history_archived`` on ``workflow:{id}``, keyed
by the run, naming the deal in its data: a deal's timeline stays the business's facts) in the
same transaction. The bytes live in the table rather than the blob store so that a row and
its history commit, back up and restore together; a deal's history is tens of kilobytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from dataclasses import dataclass

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from temporalio.client import WorkflowHistory

from store import audit
from store.db import write_lock
from store.models import Base, utcnow
from store.who import Who

ACTION = "workflow.history_archived"


class ArchivedHistory(Base):
    """One closed run's history (compressed JSON, as ``WorkflowHistory.to_json`` wrote it)."""

    __tablename__ = "workflow_histories"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    workflow_type: Mapped[str] = mapped_column(String(100))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    task_queue: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(30))
    """How the run closed: completed, failed, canceled, terminated, continued_as_new, …"""
    closed_at: Mapped[dt.datetime] = mapped_column(index=True)
    event_count: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the uncompressed history JSON."""
    size: Mapped[int] = mapped_column(Integer)
    """Bytes of the uncompressed history JSON."""
    data: Mapped[bytes] = mapped_column(LargeBinary)
    archived_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class ClosedRun:
    """A closed run as visibility lists it, with its history's JSON."""

    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: str
    closed_at: dt.datetime
    event_count: int
    history_json: str


@dataclass(frozen=True)
class StoredHistory:
    """An archived run, read back and checked against its hash."""

    workflow_id: str
    run_id: str
    workflow_type: str
    deal_id: int | None
    status: str
    closed_at: dt.datetime
    event_count: int
    sha256: str
    history_json: str

    def history(self) -> WorkflowHistory:
        return WorkflowHistory.from_json(self.workflow_id, self.history_json)


class ArchiveCorrupt(Exception):
    """An archived history whose bytes no longer match its hash."""


def archived_run_ids(session: Session, run_ids: list[str]) -> set[str]:
    """Which of ``run_ids`` are archived already."""
    found: set[str] = set()
    for start in range(0, len(run_ids), 500):  # stay under every dialect's parameter limit
        found.update(session.scalars(select(ArchivedHistory.run_id).where(
            ArchivedHistory.run_id.in_(run_ids[start:start + 500]))))
    return found


def latest_close(session: Session, task_queue: str) -> dt.datetime | None:
    """When the last run archived from ``task_queue`` closed: the sweep lists from there."""
    return session.scalar(select(func.max(ArchivedHistory.closed_at)).where(
        ArchivedHistory.task_queue == task_queue))


def archive(session: Session, run: ClosedRun, deal_id: int | None, actor: Who) -> bool:
    """Add ``run``'s history and its audit row to a write transaction of the caller's session;
    False, adding nothing, when the run is archived already (by this sweep or a racing one)."""
    raw = run.history_json.encode()
    sha = hashlib.sha256(raw).hexdigest()
    write_lock(session)
    if session.scalar(select(ArchivedHistory.id).where(ArchivedHistory.run_id == run.run_id)):
        return False
    session.add(ArchivedHistory(
        workflow_id=run.workflow_id, run_id=run.run_id, workflow_type=run.workflow_type,
        deal_id=deal_id, task_queue=run.task_queue, status=run.status,
        closed_at=run.closed_at, event_count=run.event_count, sha256=sha, size=len(raw),
        data=zlib.compress(raw, 9)))
    try:
        session.flush()  # PostgreSQL: a racing sweep's row makes this fail, not a twin
        audit.append(session, event_key=f"workflow-history:{run.run_id}", actor=actor,
                     action=ACTION, entity=audit.entity("workflow", run.workflow_id),
                     data={"deal_id": deal_id, "run_id": run.run_id,
                           "workflow_type": run.workflow_type, "status": run.status,
                           "closed_at": run.closed_at.isoformat(), "sha256": sha,
                           "event_count": run.event_count})
    except IntegrityError:
        session.rollback()
        return False
    return True


def _read(row: ArchivedHistory) -> StoredHistory:
    raw = zlib.decompress(row.data)
    if hashlib.sha256(raw).hexdigest() != row.sha256:
        raise ArchiveCorrupt(f"the archived history of run {row.run_id} ({row.workflow_id}) "
                             f"does not match its SHA-256 {row.sha256}")
    return StoredHistory(row.workflow_id, row.run_id, row.workflow_type, row.deal_id,
                         row.status, row.closed_at, row.event_count, row.sha256, raw.decode())


def deal_histories(session: Session, deal_id: int) -> list[StoredHistory]:
    """Every archived run of the deal, in the order the runs closed; raises
    :class:`ArchiveCorrupt` for a history whose bytes changed."""
    return [_read(row) for row in session.scalars(select(ArchivedHistory).where(
        ArchivedHistory.deal_id == deal_id).order_by(ArchivedHistory.closed_at,
                                                     ArchivedHistory.id))]


__all__ = ["ACTION", "ArchiveCorrupt", "ArchivedHistory", "ClosedRun", "StoredHistory",
           "archive", "archived_run_ids", "deal_histories", "latest_close"]
