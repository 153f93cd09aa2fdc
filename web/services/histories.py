"""A deal's workflow histories: archived as their runs close, read back from Temporal while
it keeps them and from the archive afterwards, and replayed on today's code.

**Archiving** (:func:`archive_closed`) lists closed runs through Temporal's visibility and
stores each one's history once (``store/history_archive.py``: unique by run, with its audit
row). The worker's housekeeping sweeps its task queue every minute, from a little before the
close time of the last run it archived (visibility may list a run a moment after a later one),
so children, billing runs and each term of a renewal (every continue-as-new closes a run) are
archived as they close, for years, however long the deal's own process has been over. A
sweep takes the oldest runs first, at most ``batch_size`` of them, and stops at the first
history it can't fetch for a reason other than "not found": no later run is archived past
it, so the next sweep's window still holds it. A history Temporal already deleted is logged
and skipped. ``dealdesk audit archive [--deal N]`` runs the same on demand. Store work runs
on threads, never on the event loop.

**Reading** (:func:`deal_histories`) gives every run of a deal once: archived runs from the
archive (checked against their hash), the others (running, or closed and not yet swept) from
Temporal. :func:`replay_deal` replays them all (``workflows/replay_check.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecution, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from store import history_archive
from store.db import in_new_session
from store.history_archive import ClosedRun
from store.who import Who
from store.workflow_deals import deal_of, workflow_ids_of
from workflows.replay_check import ReplayOutcome, replay

log = logging.getLogger("dealdesk.histories")

ARCHIVER = Who.system("worker:archive_histories")
BATCH = 50
OVERLAP = dt.timedelta(minutes=10)
"""How far before the last archived close a sweep lists again: visibility may record a run
that closed first a moment after one that closed later."""


@dataclass(frozen=True)
class SweepReport:
    archived: list[str]
    """Run ids archived by this sweep."""
    gone: list[str]
    """Run ids listed as closed whose history Temporal no longer has (nothing recorded)."""
    left: int
    """Closed runs found unarchived beyond this batch: sweep again."""


@dataclass(frozen=True)
class RecordedRun:
    """One run of a deal's workflows with its history, and where it was read from."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: str
    source: Literal["temporal", "archive"]
    history: WorkflowHistory


def _literal(value: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"not a workflow id or task queue of ours: {value!r}")
    return f"'{value}'"


def _status(execution: WorkflowExecution) -> str:
    return execution.status.name.lower() if execution.status else "unknown"


async def _listed(client: Client, query: str) -> list[WorkflowExecution]:
    return [execution async for execution in client.list_workflows(query)]


async def _fetch(client: Client, execution: WorkflowExecution) -> WorkflowHistory | None:
    """The run's history; None when Temporal has deleted it (retention, or by hand)."""
    try:
        return await client.get_workflow_handle(
            execution.id, run_id=execution.run_id).fetch_history()
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        return None


def _archive(session: Session, run: ClosedRun, prefix: str, actor: Who) -> bool:
    return history_archive.archive(session, run, deal_of(session, prefix, run.workflow_id),
                                   actor)


async def _query(sessions: sessionmaker[Session], task_queue: str, prefix: str,
                 deal_id: int | None) -> str | None:
    """The visibility query of the closed runs to look at; None when a deal has no runs."""
    closed = "ExecutionStatus != 'Running'"
    if deal_id is not None:
        ids = await in_new_session(sessions, workflow_ids_of, prefix, deal_id)
        return f"WorkflowId IN ({', '.join(map(_literal, ids))}) AND {closed}" if ids else None
    query = f"TaskQueue = {_literal(task_queue)} AND {closed}"
    since = await in_new_session(sessions, history_archive.latest_close, task_queue)
    if since is not None:
        query += f" AND CloseTime > '{(since - OVERLAP).astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S.%fZ}'"
    return query


async def archive_closed(client: Client, sessions: sessionmaker[Session], *, task_queue: str,
                         prefix: str, deal_id: int | None = None, batch_size: int = BATCH,
                         actor: Who = ARCHIVER) -> SweepReport:
    """Archive up to ``batch_size`` closed runs not archived yet, oldest first: the deal's
    (``deal_id``), or any of the installation's (its ``task_queue`` and ``prefix``)."""
    query = await _query(sessions, task_queue, prefix, deal_id)
    listed = [e for e in await _listed(client, query) if e.close_time is not None
              and e.id.startswith(prefix)] if query else []
    done = await in_new_session(sessions, history_archive.archived_run_ids,
                                [e.run_id for e in listed])
    todo = sorted((e for e in listed if e.run_id not in done),
                  key=lambda e: (e.close_time, e.run_id))
    archived: list[str] = []
    gone: list[str] = []
    for execution in todo[:batch_size]:
        history = await _fetch(client, execution)  # any other error ends the batch here
        if history is None:
            log.warning("the history of %s (run %s) is gone from Temporal: not archived",
                        execution.id, execution.run_id)
            gone.append(execution.run_id)
            continue
        assert execution.close_time is not None
        run = ClosedRun(execution.id, execution.run_id, execution.workflow_type,
                        execution.task_queue, _status(execution), execution.close_time,
                        len(history.events), await anyio.to_thread.run_sync(history.to_json))
        if await in_new_session(sessions, _archive, run, prefix, actor):
            archived.append(run.run_id)
    return SweepReport(archived, gone, max(0, len(todo) - batch_size))


def _archived_runs(session: Session, deal_id: int) -> list[RecordedRun]:
    return [RecordedRun(h.workflow_id, h.run_id, h.workflow_type, h.status, "archive",
                        h.history()) for h in history_archive.deal_histories(session, deal_id)]


def _started(run: RecordedRun) -> dt.datetime:
    return run.history.events[0].event_time.ToDatetime(tzinfo=dt.UTC)


async def deal_histories(client: Client | None, sessions: sessionmaker[Session], prefix: str,
                         deal_id: int) -> list[RecordedRun]:
    """Every recorded run of the deal's workflows, in the order they started: from the
    archive when archived, else from Temporal (skipped without a ``client``). Raises
    ``store.history_archive.ArchiveCorrupt`` for an archived history whose bytes changed,
    and Temporal's ``RPCError`` when it can't be asked."""
    runs = await in_new_session(sessions, _archived_runs, deal_id)
    ids = await in_new_session(sessions, workflow_ids_of, prefix, deal_id)
    if client is not None and ids:
        have = {run.run_id for run in runs}
        listed = await _listed(client, f"WorkflowId IN ({', '.join(map(_literal, ids))})")
        for execution in listed:
            if execution.run_id in have:
                continue
            history = await _fetch(client, execution)
            if history is not None:  # deleted since it was listed, and never archived
                runs.append(RecordedRun(execution.id, execution.run_id,
                                        execution.workflow_type, _status(execution),
                                        "temporal", history))
    return sorted(runs, key=_started)


async def replay_deal(client: Client | None, sessions: sessionmaker[Session], prefix: str,
                      deal_id: int) -> list[tuple[RecordedRun, ReplayOutcome]]:
    """Each recorded run of the deal with whether it replays on today's workflow code."""
    runs = await deal_histories(client, sessions, prefix, deal_id)
    outcomes = await replay([run.history for run in runs])
    return list(zip(runs, outcomes, strict=True))


__all__ = ["ARCHIVER", "RecordedRun", "SweepReport", "archive_closed", "deal_histories",
           "replay_deal"]
