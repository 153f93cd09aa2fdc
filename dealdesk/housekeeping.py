"""The worker's housekeeping beside its Temporal worker: a heartbeat per task queue (so
``/healthz`` knows a live worker polls it), the reconciler that starts the workflows whose
rows committed but whose start never happened (see ``store/starts.py``), and, hourly, the
pruning of long-ended sign-in sessions and idle login throttle rows (``store/auth.py``) and
the reminders of library items due for review (``web/services/library.py``: one audit row and
one mail per item and review date)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from store import auth, liveness, starts
from web.services import library

log = logging.getLogger("dealdesk.worker")
PRUNE_EVERY = 3600.0


class Housekeeping:
    def __init__(self, client: Client, sessions: sessionmaker[Session], task_queue: str,
                 base_url: str = "") -> None:
        self._client = client
        self._sessions = sessions
        self._task_queue = task_queue
        self._base_url = base_url  # for the links in review reminders
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pruned_at: float | None = None

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
                await asyncio.sleep(liveness.INTERVAL.total_seconds())
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(anyio.to_thread.run_sync(self._stop))
