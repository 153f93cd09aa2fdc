"""The deal pages: the list (stage tabs, a search, filters by owner, forecast category and
expected close, 50 rows a page) and a deal's page (its stage, what it
waits on, its quotes, proposals and envelopes, its timeline, and the mark-lost form)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from store.deals import CLOSED, FORECAST_CATEGORIES, STAGES, Deal
from store.models import User
from web.auth import CurrentUser
from web.deps import MaybeClientDep, SessionDep, SettingsDep, in_session
from web.errors import Conflict, Invalid
from web.params import MAX_ID, PathId
from web.render import render
from web.services import deals as service

router = APIRouter(include_in_schema=False)
MAX_PAGE = 100_000


def _day(text: str) -> dt.date | None:
    """A date from the query string, or None when it is not one (a page forgives a
    hand-edited URL; the API says 422)."""
    try:
        return dt.date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def _whole(text: str, low: int, high: int) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and low <= int(text) <= high \
        else None


@router.get("/deals")
def list_page(request: Request, user: CurrentUser, session: SessionDep,
              stage: Annotated[str, Query(max_length=20)] = "",
              q: Annotated[str, Query(max_length=200)] = "",
              owner: Annotated[str, Query(max_length=20)] = "",
              forecast: Annotated[str, Query(max_length=20)] = "",
              closes_after: Annotated[str, Query(max_length=20)] = "",
              closes_before: Annotated[str, Query(max_length=20)] = "",
              page: Annotated[str, Query(max_length=10)] = "1") -> Response:
    after, before = _day(closes_after), _day(closes_before)
    if after and before and before <= after:
        before = None
    f = service.DealFilter(
        stage=stage if stage in STAGES else "", q=q.strip(),
        owner_id=_whole(owner, 1, MAX_ID) if service.sees_all(user) else None,
        forecast=forecast if forecast in FORECAST_CATEGORIES else "",
        closes_after=after, closes_before=before)
    found = service.list_deals(session, user, f, page=_whole(page, 1, MAX_PAGE) or 1)
    # The tabs, the pager and the filter form keep every filter but their own.
    keep = {"q": f.q, "owner": f.owner_id or "", "forecast": f.forecast,
            "closes_after": f.closes_after or "", "closes_before": f.closes_before or ""}
    return render(request, "deals.html", {
        "page": found, "f": f, "stage": f.stage, "q": f.q, "stages": STAGES,
        "forecasts": FORECAST_CATEGORIES, "owners": service.owners(session, user),
        "keep": keep, "filtered": any(keep.values()) or bool(f.stage)}, block="list")


def _page(session: Session, user: User, deal: Deal, error: str = "") -> dict[str, Any]:
    links = service.linked(session, deal)
    return {"d": deal, "links": links, "waiting": service.waiting_on(session, links),
            "timeline": service.timeline(session, deal.id, links),
            "may_close": service.may_close(user, deal) and deal.stage not in CLOSED,
            "contract_key": uuid.uuid4().hex, "error": error}


def _deal_page(session: Session, user: User, deal_id: int, error: str = "") -> dict[str, Any]:
    return _page(session, user, service.visible(session, user, deal_id), error)


@router.get("/deals/{deal_id}")
async def deal_page(request: Request, deal_id: PathId, user: CurrentUser,
                    session: SessionDep, client: MaybeClientDep,
                    settings: SettingsDep) -> Response:
    page = await in_session(session, _deal_page, user, deal_id)
    page["process"] = await service.process_state(client, settings.workflow_prefix, deal_id)
    return render(request, "deal.html", page)


@router.post("/deals/{deal_id}/lost")
async def mark_lost(request: Request, deal_id: PathId, user: CurrentUser,
                    session: SessionDep, client: MaybeClientDep, settings: SettingsDep,
                    reason: Annotated[str, Form(max_length=service.MAX_REASON)] = ""
                    ) -> Response:
    try:
        await service.close_lost(session, client, user, deal_id, reason,
                                 task_queue=settings.task_queue,
                                 prefix=settings.workflow_prefix)
    except (Invalid, Conflict) as e:
        page = await in_session(session, _deal_page, user, deal_id, e.message)
        page["process"] = None
        return render(request, "deal.html", page, status_code=e.status)
    return RedirectResponse(f"/deals/{deal_id}", status_code=303)
