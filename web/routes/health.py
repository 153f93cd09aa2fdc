"""GET /healthz: each component's state as JSON (200 when all are up, else 503).

``tools`` lists the system programs and fonts this machine lacks (see dealdesk/tools.py),
each with its package. They do not count towards the overall ``ok``: a missing LibreOffice or
poppler disables one feature (Word uploads, anchors, page images), and a 503 would take the
whole app out of the load balancer for it. Monitoring should alert on ``tools.ok`` separately.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from dealdesk.tools import missing

router = APIRouter(tags=["health"])


async def _queue(client: Client, namespace: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, qtype in (("workflow_pollers", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
                        ("activity_pollers", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)):
        resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=namespace, task_queue=TaskQueue(name=name), task_queue_type=qtype))
        out[kind] = len(resp.pollers)
    out["ok"] = out["workflow_pollers"] > 0 and out["activity_pollers"] > 0
    return out


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    report: dict[str, Any] = {}
    try:
        with request.app.state.sessions() as s:
            s.execute(text("SELECT 1"))
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
            ok = await client.service_client.check_health()
            report["temporal"] = {"ok": bool(ok), "address": settings.temporal_address,
                                  "namespace": settings.temporal_namespace}
            report["task_queues"] = {settings.task_queue: await _queue(
                client, settings.temporal_namespace, settings.task_queue)}
        except Exception as e:
            report["temporal"] = {"ok": False, "error": type(e).__name__}
            report["task_queues"] = {settings.task_queue: {"ok": False}}
    healthy = (report["database"]["ok"] and report["temporal"]["ok"]
               and all(q["ok"] for q in report["task_queues"].values()))
    report["ok"] = healthy
    absent = missing()
    report["tools"] = {"ok": not absent, "missing": [t.as_json() for t in absent]}
    return JSONResponse(report, status_code=200 if healthy else 503)
