"""Customer health over the JSON API: measures (JSON or CSV), an account's health with its
trend, the manual override, and a recompute on demand (the use cases are
web/services/health.py; the recompute runs as HealthRecomputeWorkflow)."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field
from temporalio.client import WorkflowFailureError

from web.auth import CurrentUser, require
from web.deps import ClientDep, SessionDep, SettingsDep, in_session
from web.downloads import text_body
from web.errors import API_ERRORS, Invalid, Unavailable
from web.params import PathId
from web.services import health as service
from web.services.catalog import upload_text
from workflows.health import HealthRecomputeWorkflow, RecomputeInput, RecomputeResult

router = APIRouter(prefix="/api/v1", tags=["health"], responses=API_ERRORS)


class StoredOut(BaseModel):
    stored: int


class RejectOut(BaseModel):
    row: int = Field(description="the CSV's line number (the header is line 1)")
    problem: str


class ImportOut(BaseModel):
    accepted: int
    rejected: list[RejectOut]


class TrendPoint(BaseModel):
    day: dt.date
    score: int
    band: str


class MeasureOut(BaseModel):
    measure: str
    value: float
    measured_on: dt.date
    source: str


class OverrideOut(BaseModel):
    score: int
    band: str
    reason: str
    set_by: str
    expires_at: dt.datetime


class HealthOut(BaseModel):
    account_id: int
    account: str
    score: int | None = Field(description="null until the account is first scored")
    band: str | None = Field(description="good, at_risk or critical")
    overridden: bool
    override: OverrideOut | None
    trend: list[TrendPoint] = Field(description="the computed score per day, oldest first")
    measures: list[MeasureOut] = Field(description="the latest value of each measure")
    components: dict[str, Any] = Field(description="the latest computed score's parts: each "
                                                   "measure and group as 0–100, the weights")


def _health(session: SessionDep, user: CurrentUser, account_id: int) -> HealthOut:
    v = service.view(session, user, account_id)
    o = v.override
    return HealthOut(
        account_id=v.account.id, account=v.account.name,
        score=v.state.score if v.state else None, band=v.state.band if v.state else None,
        overridden=bool(v.state and v.state.overridden),
        override=OverrideOut(score=o.score, band=o.band, reason=o.reason, set_by=o.set_by.name,
                             expires_at=o.expires_at) if o else None,
        trend=[TrendPoint(day=t.day, score=t.score, band=t.band) for t in v.trend],
        measures=[MeasureOut(measure=m.measure, value=m.value, measured_on=m.measured_on,
                             source=m.source) for m in v.measures],
        components=v.components)


@router.put("/accounts/{account_id}/measures", response_model=StoredOut)
def put_measures(account_id: PathId, rows: Annotated[list[service.MeasureIn], Body()],
                 user: CurrentUser, session: SessionDep) -> StoredOut:
    """Store the measures, all or none: a bad row is a 422 naming it (``3.value``). The same
    account, measure and day again updates the value."""
    n = service.put_measures(session, user, account_id, rows)
    session.commit()
    return StoredOut(stored=n)


@router.post("/measures.csv", response_model=ImportOut, openapi_extra=text_body(
    "text/csv", description="columns: " + ", ".join(service.CSV_COLUMNS) + " (account by name "
    "or id; measured_on as YYYY-MM-DD); a multipart upload's `file` is read the same way"))
async def import_measures(request: Request, user: CurrentUser,
                          session: SessionDep) -> ImportOut:
    """Each good row stored, each bad one reported with its line and problem."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise Invalid("send the CSV as the form's `file`", field="file")
        text = upload_text(await upload.read(), "file")
    else:
        text = upload_text(await request.body(), "body")
    result = await in_session(session, service.import_csv, user, text)
    return ImportOut(accepted=result.accepted,
                     rejected=[RejectOut(row=r.row, problem=r.problem) for r in result.rejected])


@router.get("/accounts/{account_id}/health", response_model=HealthOut)
def get_health(account_id: PathId, user: CurrentUser, session: SessionDep) -> HealthOut:
    return _health(session, user, account_id)


@router.post("/accounts/{account_id}/health/override", response_model=HealthOut)
def set_override(account_id: PathId, body: service.OverrideIn, user: CurrentUser,
                 session: SessionDep) -> HealthOut:
    """Set the score by hand until ``expires_at``; the nightly recompute leaves it alone."""
    service.set_override(session, user, account_id, body)
    session.commit()
    return _health(session, user, account_id)


@router.delete("/accounts/{account_id}/health/override", status_code=204,
               response_class=Response)
def clear_override(account_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    service.clear_override(session, user, account_id)
    session.commit()
    return Response(status_code=204)


class RecomputeOut(BaseModel):
    scored: int
    drops: int = Field(description="band drops found (each made one CSM task)")


@router.post("/health/recompute", response_model=RecomputeOut,
             dependencies=[require("admin")])
async def recompute(user: CurrentUser, client: ClientDep,
                    settings: SettingsDep) -> RecomputeOut:
    """Recompute every account's health now, as the nightly schedule does."""
    try:
        result: RecomputeResult = await client.execute_workflow(
            HealthRecomputeWorkflow.run, RecomputeInput(),
            id=f"{settings.workflow_prefix}health-recompute-{uuid.uuid4().hex}",
            task_queue=settings.task_queue, execution_timeout=timedelta(minutes=2))
    except WorkflowFailureError:
        raise Unavailable("the recompute did not finish: try again in a moment") from None
    return RecomputeOut(scored=result.scored, drops=result.drops)
