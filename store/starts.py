"""Workflow starts that belong to a store change: written in the change's transaction, started
after it commits.

The one pattern for "write rows and start a workflow" (docs/ARCHITECTURE.md, *Store and
Temporal*): a use case adds its rows **and** a :class:`WorkflowStart` (the workflow's id, type,
task queue and encoded input) in one transaction. After the commit, the request starts the
workflow at once (:func:`start_now`); if it can't (Temporal unreachable, the process died), the
worker's reconciler (:func:`start_pending`, run every few seconds) starts whatever is still
pending. Starting is idempotent: the id is the business key and the start refuses a
duplicate id even after the first run closed (``REJECT_DUPLICATE``), so a start repeated by
the request and the reconciler, or by two reconcilers, runs the workflow once. A crash before
the commit leaves nothing; a crash after it leaves a pending start that the reconciler picks
up; no workflow ever starts without its rows.

**Through a parent.** A step of a deal is its DealWorkflow's child: its row names the parent
(:class:`Parent`), and starting it is the parent's ``start_child`` signal, sent with the
parent's start (signal-with-start: the parent is started if it isn't running yet). It needs
the Temporal server only, never a worker, so it is as quick and as durable as a plain start;
the parent starts the child a moment later, once per child id however often the row is
sent. A parent that has closed (the deal won or lost) is not started again; the child then
starts on its own, as it would without a deal. A **signal** row
(:func:`enqueue_signal`) tells the parent something that happened in the store (the deal
closed): signal-with-start, once per row key; a closed parent needs no telling.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, LargeBinary, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import RawValue, WorkflowIDReusePolicy
from temporalio.converter import DataConverter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from dealdesk.faults import crash_point
from store.db import in_new_session, in_session
from store.models import Base, utcnow
from workflows.deal_messages import ChildStart

log = logging.getLogger("dealdesk.starts")


class WorkflowStart(Base):
    """A workflow to start once the transaction that wrote this row has committed."""

    __tablename__ = "workflow_starts"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(200), unique=True)
    workflow_type: Mapped[str] = mapped_column(String(100))
    task_queue: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    """The input as Temporal's payload converter encoded it (a serialised ``Payload``)."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[str | None] = mapped_column(String(200))
    """The workflow this one is a child of (or, for a signal row, the one it tells)."""
    parent_type: Mapped[str | None] = mapped_column(String(100))
    parent_payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    signal: Mapped[str | None] = mapped_column(String(50))
    """Set on a signal row: the parent's signal, ``payload`` its argument."""


@dataclass(frozen=True)
class Parent:
    """A workflow that starts its children itself: its id, type and input."""

    workflow_id: str
    workflow_type: str
    arg: Any


CHILD_SIGNAL = "start_child"
"""The parent's signal that starts a child (``workflows.deal.DealWorkflow.start_child``)."""


def _encode(arg: Any) -> bytes:
    return DataConverter.default.payload_converter.to_payloads([arg])[0].SerializeToString()


def enqueue(session: Session, workflow_id: str, workflow_type: str, arg: Any,
            task_queue: str, parent: Parent | None = None) -> None:
    """Add the start to the caller's transaction (once per workflow id); with a ``parent``,
    the parent starts it as its child."""
    if session.scalar(select(WorkflowStart.id).where(WorkflowStart.workflow_id == workflow_id)):
        return
    row = WorkflowStart(workflow_id=workflow_id, workflow_type=workflow_type,
                        task_queue=task_queue, payload=_encode(arg))
    if parent is not None:
        row.parent_id, row.parent_type = parent.workflow_id, parent.workflow_type
        row.parent_payload = _encode(parent.arg)
    session.add(row)
    session.flush()


def enqueue_signal(session: Session, key: str, parent: Parent, signal: str, arg: Any,
                   task_queue: str) -> None:
    """Add a signal to ``parent`` to the caller's transaction, once per ``key`` (the parent is
    started with it if it isn't running; a parent that has closed is left alone)."""
    enqueue(session, key, parent.workflow_type, arg, task_queue, parent)
    session.execute(update(WorkflowStart).where(WorkflowStart.workflow_id == key)
                    .values(signal=signal))


def _payload(data: bytes | None) -> RawValue:
    return RawValue(Payload.FromString(data or b""))


async def _start_alone(client: Client, row: WorkflowStart) -> None:
    await client.start_workflow(
        row.workflow_type, _payload(row.payload), id=row.workflow_id,
        task_queue=row.task_queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)


async def _start_child(client: Client, row: WorkflowStart) -> None:
    """The parent's ``start_child`` signal, starting the parent if need be (it starts the
    child); a parent that has closed leaves the child to start on its own."""
    assert row.parent_id is not None and row.parent_type is not None
    arg = DataConverter.default.payload_converter.from_payload(Payload.FromString(row.payload))
    try:
        await client.start_workflow(
            row.parent_type, _payload(row.parent_payload), id=row.parent_id,
            task_queue=row.task_queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            start_signal=CHILD_SIGNAL,
            start_signal_args=[ChildStart(row.workflow_id, row.workflow_type, row.task_queue,
                                          arg)])
    except WorkflowAlreadyStartedError:
        log.info("%s starts on its own: %s has closed", row.workflow_id, row.parent_id)
        await _start_alone(client, row)


async def _signal(client: Client, row: WorkflowStart) -> None:
    assert row.parent_id is not None and row.parent_type is not None and row.signal
    await client.start_workflow(
        row.parent_type, _payload(row.parent_payload), id=row.parent_id,
        task_queue=row.task_queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        start_signal=row.signal, start_signal_args=[_payload(row.payload)])


async def _start(client: Client, row: WorkflowStart) -> str | None:
    """Start one workflow (or send one signal); None when it runs (or ran), else the error to
    record."""
    try:
        if row.signal:
            await _signal(client, row)
        elif row.parent_id:
            await _start_child(client, row)
        else:
            await _start_alone(client, row)
    except WorkflowAlreadyStartedError:
        return None
    except RPCError as e:
        return f"{e.status.name if e.status else 'error'}: {e.message}"[:2000]
    return None


def _pending(session: Session, workflow_ids: list[str] | None,
             older_than: dt.timedelta) -> list[WorkflowStart]:
    q = select(WorkflowStart).where(WorkflowStart.started_at.is_(None))
    if workflow_ids is not None:
        q = q.where(WorkflowStart.workflow_id.in_(workflow_ids))
    else:
        q = q.where(WorkflowStart.created_at <= dt.datetime.now(dt.UTC) - older_than)
    rows = list(session.scalars(q.order_by(WorkflowStart.id).limit(200)))
    for row in rows:
        session.expunge(row)
    return rows


def _mark(session: Session, row_id: int, error: str | None) -> None:
    if error is None:
        session.execute(update(WorkflowStart).where(WorkflowStart.id == row_id)
                        .values(started_at=dt.datetime.now(dt.UTC), last_error=None))
    else:
        session.execute(update(WorkflowStart).where(WorkflowStart.id == row_id)
                        .values(attempts=WorkflowStart.attempts + 1, last_error=error))


async def _start_rows(client: Client, rows: list[WorkflowStart],
                      mark: Callable[[int, str | None], Awaitable[None]]) -> int:
    left = 0
    for row in rows:
        error = await _start(client, row)
        crash_point("start:after-start")
        if error is not None:
            left += 1
            log.warning("could not start %s yet: %s", row.workflow_id, error)
        await mark(row.id, error)
    return left


async def start_pending(client: Client, sessions: sessionmaker[Session], *,
                        older_than: dt.timedelta = dt.timedelta(seconds=2)) -> int:
    """The reconciler's round: start every pending workflow older than ``older_than`` (the
    request that wrote it normally starts it first); returns how many are still pending."""
    rows = await in_new_session(sessions, _pending, None, older_than)

    async def mark(row_id: int, error: str | None) -> None:
        await in_new_session(sessions, _mark, row_id, error)

    return await _start_rows(client, rows, mark)


async def start_now(client: Client | None, session: Session, workflow_id: str) -> bool:
    """The fast path right after the commit: True if the workflow runs (or ran); False
    leaves it to the reconciler (its rows are committed, so nothing is lost)."""
    rows = await in_session(session, _pending, [workflow_id], dt.timedelta(0))
    if not rows:
        return True
    if client is None:
        return False

    async def mark(row_id: int, error: str | None) -> None:
        await in_session(session, _mark, row_id, error)

    return await _start_rows(client, rows, mark) == 0


def is_pending(session: Session, workflow_id: str) -> bool:
    return session.scalar(select(WorkflowStart.started_at.is_(None)).where(
        WorkflowStart.workflow_id == workflow_id)) is True


__all__ = ["Parent", "WorkflowStart", "enqueue", "enqueue_signal", "is_pending", "start_now",
           "start_pending"]
