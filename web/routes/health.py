"""GET /healthz: each component's state as JSON (200 when all are up, else 503).

``tools`` lists the system programs and fonts this machine lacks (see dealdesk/tools.py),
each with its package. They do not count towards the overall ``ok``: a missing LibreOffice or
poppler disables one feature (Word uploads, anchors, page images), and a 503 would take the
whole app out of the load balancer for it. Monitoring should alert on ``tools.ok`` separately.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from dealdesk.tools import missing
from store import liveness

router = APIRouter(tags=["health"])


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


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    report: dict[str, Any] = {}
    live = 0
    try:
        live = await anyio.to_thread.run_sync(_store, request.app.state.sessions,
                                              settings.task_queue)
        report["database"] = {"ok": True, "dialect": request.app.state.engine.dialect.name}
    except Exception as e:
        report["database"] = {"ok": False, "error": type(e).__name__}
    client: Client | None = request.app.state.temporal
    if client is None:
        report["temporal"] = {"ok": False, "error": "not connected",
                              "address": settings.temporal_address}
        report["task_queues"] = {settings.task_queue: {"ok": False}}
    else:
        try:
            ok = await client.service_client.check_health(timeout=timedelta(seconds=2))
            report["temporal"] = {"ok": bool(ok), "address": settings.temporal_address,
                                  "namespace": settings.temporal_namespace}
            report["task_queues"] = {settings.task_queue: await _queue(
                client, settings.temporal_namespace, settings.task_queue, live)}
        except Exception as e:
            report["temporal"] = {"ok": False, "error": type(e).__name__}
            report["task_queues"] = {settings.task_queue: {"ok": False}}
    healthy = (report["database"]["ok"] and report["temporal"]["ok"]
               and all(q["ok"] for q in report["task_queues"].values()))
    report["ok"] = healthy
    absent = missing()
    report["tools"] = {"ok": not absent, "missing": [t.as_json() for t in absent]}
    return JSONResponse(report, status_code=200 if healthy else 503)
