"""GET /healthz: each component's state as JSON (200 when all are up, else 503), as the
background :class:`HealthProbe` last saw it (at most a second ago: ``checked_ms_ago``).

``tools`` lists the system programs and fonts this machine lacks (see dealdesk/tools.py),
each with its package. They do not count towards the overall ``ok``: a missing LibreOffice or
poppler disables one feature (Word uploads, anchors, page images), and a 503 would take the
whole app out of the load balancer for it. Monitoring should alert on ``tools.ok`` separately.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from dealdesk.settings import Settings
from dealdesk.tools import missing
from store import liveness

router = APIRouter(tags=["health"])
PROBE_EVERY = 1.0
TOOLS_EVERY = 30.0


async def _queue(client: Client, namespace: str, name: str, live: int) -> dict[str, Any]:
    """Temporal's pollers of the queue, and the workers whose heartbeat is fresh: a killed
    worker stays in Temporal's poller list for a minute, so only both together mean a live
    worker is polling."""
    out: dict[str, Any] = {"live_workers": live}
    for kind, qtype in (("workflow_pollers", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
                        ("activity_pollers", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)):
        resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=namespace, task_queue=TaskQueue(name=name), task_queue_type=qtype),
            timeout=timedelta(seconds=2))
        out[kind] = len(resp.pollers)
    out["ok"] = out["workflow_pollers"] > 0 and out["activity_pollers"] > 0 and live > 0
    if not out["ok"]:
        out["error"] = "no live worker polls this task queue"
    return out


def _store(sessions: sessionmaker[Session], task_queue: str) -> int:
    with sessions() as s:
        s.execute(text("SELECT 1"))
        return liveness.live_workers(s, task_queue)


class HealthProbe:
    """The store, Temporal and the task queue's workers, checked in the background every
    :data:`PROBE_EVERY` seconds (missing tools every :data:`TOOLS_EVERY`); /healthz answers
    from the last check (with its age). A load balancer polls /healthz often: answering from
    memory keeps it fast when the app is busiest (no thread hop queued behind a burst, no RPCs
    to a loaded Temporal), which is exactly when it must not time out, and a check at most a
    second old is as good for routing."""

    def __init__(self, settings: Settings, dialect: str) -> None:
        self._settings = settings
        self._dialect = dialect
        self.checked_at = 0.0
        self._tools_at = -TOOLS_EVERY
        self._absent: list[Any] = []
        not_yet = {"ok": False, "error": "not checked yet"}
        self.report: dict[str, Any] = {"database": not_yet, "temporal": not_yet,
                                       "task_queues": {settings.task_queue: not_yet}}

    async def check(self, sessions: sessionmaker[Session], client: Client | None) -> None:
        settings = self._settings
        live = 0
        try:
            live = await anyio.to_thread.run_sync(_store, sessions, settings.task_queue)
            database: dict[str, Any] = {"ok": True}
        except Exception as e:
            database = {"ok": False, "error": type(e).__name__}
        if client is None:
            temporal: dict[str, Any] = {"ok": False, "error": "not connected",
                                        "address": settings.temporal_address}
            queue: dict[str, Any] = {"ok": False, "error": "Temporal not connected"}
        else:
            try:
                ok = await client.service_client.check_health(timeout=timedelta(seconds=2))
                temporal = {"ok": bool(ok), "address": settings.temporal_address,
                            "namespace": settings.temporal_namespace}
                queue = await _queue(client, settings.temporal_namespace, settings.task_queue,
                                     live)
            except Exception as e:
                temporal = {"ok": False, "error": type(e).__name__}
                queue = {"ok": False, "error": "Temporal unreachable"}
        if time.monotonic() - self._tools_at >= TOOLS_EVERY:  # a dozen file-system lookups
            self._absent = await anyio.to_thread.run_sync(missing)
            self._tools_at = time.monotonic()
        self.report = {"database": database, "temporal": temporal,
                       "task_queues": {settings.task_queue: queue}}
        self.checked_at = time.monotonic()

    async def run(self, app_state: Any) -> None:
        while True:
            await self.check(app_state.sessions, app_state.temporal)
            await asyncio.sleep(PROBE_EVERY)

    def answer(self) -> tuple[int, bytes]:
        """/healthz's status and JSON body, from memory (no I/O, no waiting)."""
        report: dict[str, Any] = dict(self.report)
        database = report["database"]
        healthy = (database["ok"] and report["temporal"]["ok"]
                   and all(q["ok"] for q in report["task_queues"].values()))
        report["database"] = {**database, "dialect": self._dialect}
        report["ok"] = healthy
        report["checked_ms_ago"] = round((time.monotonic() - self.checked_at) * 1000)
        report["tools"] = {"ok": not self._absent,
                           "missing": [t.as_json() for t in self._absent]}
        return (200 if healthy else 503), json.dumps(
            report, ensure_ascii=False, separators=(",", ":")).encode()


@router.get("/livez")
async def livez() -> JSONResponse:
    """This process answers (for a container's liveness check; /healthz is the whole
    picture, 503 when a dependency is down, for monitoring and readiness)."""
    return JSONResponse({"ok": True})


@router.get("/healthz", responses={503: {"description": "the same report: a component is "
                                                     "down (its ok is false)"}})
async def healthz(request: Request) -> Response:
    """Served here in tests and under other servers; ``dealdesk web`` answers it in its HTTP
    protocol, ahead of queued requests (web/health_first.py), with the same body."""
    status, body = request.app.state.health.answer()
    return Response(body, status_code=status, media_type="application/json")
