"""The worker's housekeeping beside its Temporal worker: a heartbeat per task queue (so
``/healthz`` knows a live worker polls it), the reconciler that starts the workflows whose
rows committed but whose start never happened (see ``store/starts.py``), and, hourly, the
pruning of long-ended sign-in sessions and idle login throttle rows (``store/auth.py``) and
the reminders of library items due for review (``web/services/library.py``: one audit row and
one mail per item and review date), and a signed tree head of the audit log when it has grown
(``web/services/transparency.py``; on its own timer, so a TSA that is down delays only that).
At start it creates, or brings up to date, the Temporal Schedule that recomputes customer
health nightly (``workflows/health.py``); every worker does so, and the schedule's fixed id
makes that idempotent. Then it moves billing runs still running under their old
``deal-{quote}`` ids (``dealdesk/billing_ids.py``). Every minute it archives the histories of
the queue's runs that closed since (``web/services/histories.py``), before Temporal's retention
deletes them; again at the next round while a batch was full."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from dealdesk.billing_ids import move_billing_runs
from store import auth, liveness, starts
from web.services import histories, library
from workflows.health import NIGHTLY_CRON, SCHEDULE_ID, HealthRecomputeWorkflow, RecomputeInput

log = logging.getLogger("dealdesk.worker")
PRUNE_EVERY = 3600.0
ARCHIVE_EVERY = 60.0
HEAD_EVERY = 3600.0


class Housekeeping:
    def __init__(self, client: Client, sessions: sessionmaker[Session], task_queue: str,
                 base_url: str = "", workflow_prefix: str = "",
                 sign_head: Callable[[Session], object] | None = None) -> None:
        """``sign_head``: issues the audit log's tree head if the log grew (the worker passes
        ``issue_tree_head`` bound to its PKI, TSA and seal); None: no heads."""
        self._client = client
        self._prefix = workflow_prefix
        self._scheduled = False
        self._billing_moved = False
        self._sessions = sessions
        self._task_queue = task_queue
        self._base_url = base_url  # for the links in review reminders
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pruned_at: float | None = None
        self._archived_at: float | None = None
        self._sign_head = sign_head
        self._head_tried_at: float | None = None

    def _beat(self) -> None:
        with self._sessions() as s:
            liveness.beat(s, self.worker_id, self._task_queue)

    def _prune(self) -> None:
        """Hourly (and at start), in each worker: the deletes are idempotent."""
        if self._pruned_at is not None and time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return
        with self._sessions() as s:
            auth.prune(s)
        with self._sessions() as s:
            library.queue_review_notices(s, self._base_url)
        self._pruned_at = time.monotonic()

    def _sign_tree_head(self) -> None:
        """Hourly (and at start); several workers may each sign a head of the same size,
        which is harmless."""
        if self._sign_head is None or (self._head_tried_at is not None and
                                       time.monotonic() - self._head_tried_at < HEAD_EVERY):
            return
        self._head_tried_at = time.monotonic()  # tried: a failure waits for the next hour
        with self._sessions() as s:
            self._sign_head(s)

    def nightly_schedule(self) -> Schedule:
        return Schedule(
            action=ScheduleActionStartWorkflow(
                HealthRecomputeWorkflow.run, RecomputeInput(),
                id=f"{self._prefix}health-recompute", task_queue=self._task_queue),
            spec=ScheduleSpec(cron_expressions=[NIGHTLY_CRON]))

    async def _ensure_schedule(self) -> None:
        """Create the nightly health schedule, or update an existing one to this worker's
        queue and timing; retried each round until it succeeds."""
        if self._scheduled:
            return
        schedule = self.nightly_schedule()
        try:
            await self._client.create_schedule(f"{self._prefix}{SCHEDULE_ID}", schedule)
        except ScheduleAlreadyRunningError:
            def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await self._client.get_schedule_handle(
                f"{self._prefix}{SCHEDULE_ID}").update(update)
        self._scheduled = True

    async def _move_billing_runs(self) -> None:
        if not self._billing_moved:
            await move_billing_runs(self._client, self._prefix)
            self._billing_moved = True

    async def _archive_histories(self) -> None:
        """Each closed run's history into the store once (any worker may; the run id is the
        archive's key)."""
        if self._archived_at is not None and time.monotonic() - self._archived_at < ARCHIVE_EVERY:
            return
        self._archived_at = time.monotonic()  # a failing sweep waits its minute too
        report = await histories.archive_closed(self._client, self._sessions,
                                                task_queue=self._task_queue, prefix=self._prefix)
        if report.left:
            self._archived_at = None

    def _stop(self) -> None:
        with self._sessions() as s:
            liveness.stop(s, self.worker_id)

    async def run(self) -> None:
        """Until cancelled: beat, then start whatever is pending, every few seconds."""
        try:
            while True:
                try:
                    await anyio.to_thread.run_sync(self._beat)
                    await anyio.to_thread.run_sync(self._prune)
                    await starts.start_pending(self._client, self._sessions)
                except Exception:  # keep going: the next round may succeed
                    log.exception("housekeeping round failed")
                try:  # on its own: a TSA that is down must not hold up the rest
                    await anyio.to_thread.run_sync(self._sign_tree_head)
                except Exception:
                    log.exception("the audit log's tree head could not be signed")
                try:  # on its own: a schedule refused must not hold up the starts
                    await self._ensure_schedule()
                    await self._move_billing_runs()
                except Exception:
                    log.exception("the nightly health schedule could not be made, or old "
                                  "billing runs could not be moved")
                try:
                    await self._archive_histories()
                except Exception:
                    log.exception("closed workflows' histories could not be archived")
                await asyncio.sleep(liveness.INTERVAL.total_seconds())
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(anyio.to_thread.run_sync(self._stop))
