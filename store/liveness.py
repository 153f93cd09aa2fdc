"""Worker liveness: every worker process writes a heartbeat row per task queue every few
seconds, and ``/healthz`` calls a queue live only while some heartbeat is fresh.

Temporal's own poller list can't tell: a SIGKILLed worker's last long poll stays listed for a
minute or more, so the health check kept saying "ok" with no worker left.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.models import Base, utcnow

INTERVAL = dt.timedelta(seconds=3)
"""How often a worker beats."""
FRESH = dt.timedelta(seconds=10)
"""A heartbeat older than this is a dead (or hung) worker."""


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    task_queue: Mapped[str] = mapped_column(String(200), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def beat(session: Session, worker_id: str, task_queue: str) -> None:
    """Record that this worker is alive (commits); old rows of dead workers are pruned."""
    now = dt.datetime.now(dt.UTC)
    done = session.execute(update(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id)
                           .values(seen_at=now))
    if not done.rowcount:  # type: ignore[attr-defined]
        session.add(WorkerHeartbeat(worker_id=worker_id, task_queue=task_queue, started_at=now,
                                    seen_at=now))
    session.execute(delete(WorkerHeartbeat).where(
        WorkerHeartbeat.seen_at < now - dt.timedelta(days=1)))
    session.commit()


def stop(session: Session, worker_id: str) -> None:
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))
    session.commit()


def live_workers(session: Session, task_queue: str) -> int:
    cutoff = dt.datetime.now(dt.UTC) - FRESH
    return session.scalar(select(func.count()).select_from(WorkerHeartbeat).where(
        WorkerHeartbeat.task_queue == task_queue, WorkerHeartbeat.seen_at >= cutoff)) or 0
