"""The customer health pages: every scored account by band (worst first) with the CSV upload
of measures and its per-row report of rejects, an account's health (score, band, override,
the measures behind it, the trend as an inline SVG chart) with the override form, and the
inbox's **Done** on a health alert. The forms call the API's use cases
(web/services/health.py), so the pages refuse what the API refuses."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from store.health import HealthScore
from store.models import User
from web import uploads
from web.auth import CurrentUser
from web.deps import FormDep, SessionDep, in_session
from web.errors import AppError, Invalid, NotFound, TooLarge
from web.params import PathId, form_int
from web.render import render
from web.services import health as service
from web.services.catalog import MAX_UPLOAD, upload_text
from workflows.health_rules import CRITICAL_BELOW, GOOD_FROM

router = APIRouter(include_in_schema=False)
CHART_W, CHART_H = 600, 120
OVERRIDE_FIELDS = {"score": "score", "reason": "reason", "expires_at": "expires_on",
                   "expires_on": "expires_on"}
"""The fields a refusal names (the use case's or the form's) as the form spells them."""


def chart_points(trend: list[HealthScore]) -> list[tuple[float, float]]:
    """The trend as SVG coordinates: days left to right, score 100 at the top."""
    step = CHART_W / max(len(trend) - 1, 1)
    return [(round(i * step, 1), round(CHART_H * (100 - t.score) / 100, 1))
            for i, t in enumerate(trend)]


def _list(session: Session, user: User) -> dict[str, Any]:
    return {"rows": service.by_band(session, user), "may_write": service.may_write(user),
            "max_mb": MAX_UPLOAD // uploads.MB, "columns": service.CSV_COLUMNS,
            "report": None, "error": ""}


@router.get("/health")
def list_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    return render(request, "health_list.html", _list(session, user))


limit_upload = uploads.limit_upload(lambda _: MAX_UPLOAD // uploads.MB,
                                    what="a CSV of measures", field="file")


@router.post("/health/measures", dependencies=[Depends(limit_upload)])
async def upload_measures(request: Request, user: CurrentUser, session: SessionDep,
                          form: FormDep) -> Response:
    """The page's CSV upload (the API's ``POST /api/v1/measures.csv``): each good row stored,
    each bad one listed with its line. Read by hand, so an oversized upload is refused from
    its Content-Length before anything parses it."""
    service.require_writer(user)
    upload = form.get("file")
    report, error, status = None, "", 200
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise Invalid("choose a CSV file of measures", field="file")
        text = upload_text(await upload.read(MAX_UPLOAD + 1), "file")
        report = await in_session(session, service.import_csv, user, text)
    except (Invalid, TooLarge) as e:
        error, status = e.message, e.status
    ctx = await in_session(session, _list, user)
    ctx.update(report=report, error=error, filename=getattr(upload, "filename", "") or "")
    return render(request, "health_list.html", ctx, status_code=status)


def _account(session: Session, user: User, account_id: int, errors: dict[str, str],
             values: dict[str, str], error: str) -> dict[str, Any]:
    v = service.view(session, user, account_id)
    today = dt.datetime.now(dt.UTC).date()
    return {"v": v, "points": chart_points(v.trend), "w": CHART_W, "h": CHART_H,
            "good_y": CHART_H * (100 - GOOD_FROM) / 100,
            "critical_y": CHART_H * (100 - CRITICAL_BELOW) / 100,
            "may_write": service.may_write(user), "errors": errors, "values": values,
            "error": error, "today": today,
            "last_day": today + dt.timedelta(days=service.MAX_OVERRIDE_DAYS - 1),
            "good_from": GOOD_FROM, "critical_below": CRITICAL_BELOW}


async def _account_page(request: Request, session: Session, user: User, account_id: int, *,
                        errors: dict[str, str] | None = None,
                        values: dict[str, str] | None = None, error: str = "",
                        status_code: int = 200) -> Response:
    ctx = await in_session(session, _account, user, account_id, errors or {}, values or {},
                           error)
    return render(request, "account_health.html", ctx, status_code=status_code)


@router.get("/accounts/{account_id}/health")
async def account_page(request: Request, account_id: PathId, user: CurrentUser,
                       session: SessionDep) -> Response:
    return await _account_page(request, session, user, account_id)


def override_fields(score: str, reason: str, expires_on: str) -> service.OverrideIn:
    """The form as the use case's input: a whole score 0–100, a reason, and the last day the
    override holds (it ends at the following midnight, UTC)."""
    number = form_int(score, "score", 0, 100, what="a whole number from 0 to 100")
    if number is None:
        raise Invalid("give the score, from 0 to 100", field="score")
    if not reason.strip():
        raise Invalid("say why you override the score", field="reason")
    try:
        last = dt.date.fromisoformat(expires_on.strip())
    except ValueError:
        raise Invalid("choose the last day the override holds (YYYY-MM-DD)",
                      field="expires_on") from None
    today = dt.datetime.now(dt.UTC).date()
    if not today <= last < today + dt.timedelta(days=service.MAX_OVERRIDE_DAYS):
        raise Invalid("the last day must be from today to a year ahead", field="expires_on")
    ends = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
    return service.OverrideIn(score=number, reason=reason, expires_at=ends)


@router.post("/accounts/{account_id}/health/override")
async def set_override(request: Request, account_id: PathId, user: CurrentUser,
                       session: SessionDep,
                       score: Annotated[str, Form(max_length=40)] = "",
                       reason: Annotated[str, Form(max_length=service.MAX_REASON)] = "",
                       expires_on: Annotated[str, Form(max_length=40)] = "") -> Response:
    values = {"score": score, "reason": reason, "expires_on": expires_on}
    try:
        fields = override_fields(score, reason, expires_on)
        await in_session(session, service.set_override, user, account_id, fields)
    except NotFound:
        raise
    except AppError as e:
        if isinstance(e, Invalid) and e.field in OVERRIDE_FIELDS:
            return await _account_page(request, session, user, account_id, values=values,
                                       errors={OVERRIDE_FIELDS[e.field]: e.message},
                                       status_code=e.status)
        return await _account_page(request, session, user, account_id, values=values,
                                   error=e.message, status_code=e.status)
    return RedirectResponse(f"/accounts/{account_id}/health", status_code=303)


@router.post("/accounts/{account_id}/health/override/end")
async def end_override(request: Request, account_id: PathId, user: CurrentUser,
                       session: SessionDep) -> Response:
    """``DELETE /api/v1/accounts/{id}/health/override`` from the page."""
    try:
        await in_session(session, service.clear_override, user, account_id)
    except AppError as e:
        if isinstance(e, NotFound) and e.message.startswith("no account"):
            raise
        return await _account_page(request, session, user, account_id, error=e.message,
                                   status_code=e.status)
    return RedirectResponse(f"/accounts/{account_id}/health", status_code=303)


@router.post("/health/tasks/{task_id}/done")
def task_done(task_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    service.close_task(session, user, task_id)
    return RedirectResponse("/inbox", status_code=303)

