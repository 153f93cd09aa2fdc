"""The customer health pages: every scored account by band (worst first), an account's health
(score, band, override, the measures behind it, the trend as an inline SVG chart), and the
inbox's **Done** on a health alert."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from store.health import HealthScore
from web.auth import CurrentUser
from web.deps import SessionDep
from web.params import PathId
from web.render import render
from web.services import health as service
from workflows.health_rules import CRITICAL_BELOW, GOOD_FROM

router = APIRouter(include_in_schema=False)
CHART_W, CHART_H = 600, 120


def chart_points(trend: list[HealthScore]) -> list[tuple[float, float]]:
    """The trend as SVG coordinates: days left to right, score 100 at the top."""
    step = CHART_W / max(len(trend) - 1, 1)
    return [(round(i * step, 1), round(CHART_H * (100 - t.score) / 100, 1))
            for i, t in enumerate(trend)]


@router.get("/health")
def list_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    return render(request, "health_list.html", {"rows": service.by_band(session, user)})


@router.get("/accounts/{account_id}/health")
def account_page(request: Request, account_id: PathId, user: CurrentUser,
                 session: SessionDep) -> Response:
    v = service.view(session, user, account_id)
    return render(request, "account_health.html", {
        "v": v, "points": chart_points(v.trend), "w": CHART_W, "h": CHART_H,
        "good_y": CHART_H * (100 - GOOD_FROM) / 100,
        "critical_y": CHART_H * (100 - CRITICAL_BELOW) / 100})


@router.post("/health/tasks/{task_id}/done")
def task_done(task_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    service.close_task(session, user, task_id)
    return RedirectResponse("/inbox", status_code=303)
