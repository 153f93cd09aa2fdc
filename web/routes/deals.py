"""The deal pages: the list (stage tabs, a search) and a deal's page (its stage, what it
waits on, its quotes, proposals and envelopes, its timeline, and the mark-lost form)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from store.deals import CLOSED, STAGES, Deal
from store.models import User
from web.auth import CurrentUser
from web.deps import MaybeClientDep, SessionDep, SettingsDep, in_session
from web.errors import Conflict, Invalid
from web.params import PathId
from web.render import render
from web.services import deals as service

router = APIRouter(include_in_schema=False)


@router.get("/deals")
def list_page(request: Request, user: CurrentUser, session: SessionDep,
              stage: Annotated[str, Query(max_length=20)] = "",
              q: Annotated[str, Query(max_length=200)] = "") -> Response:
    stage = stage if stage in STAGES else ""
    return render(request, "deals.html", {
        "deals": service.list_deals(session, user, stage=stage, q=q), "stage": stage, "q": q,
        "stages": STAGES, "keep": {"stage": stage}}, block="list")


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
