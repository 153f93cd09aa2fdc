"""Deals over the JSON API: create, list with filters, read with what the deal waits on and
its timeline, mark lost (the use cases are web/services/deals.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from store.deals import FORECAST_CATEGORIES, Deal
from store.models import User
from web.auth import CurrentUser
from web.deps import IdempotencyKey, MaybeClientDep, SessionDep, SettingsDep, in_session
from web.errors import API_ERRORS
from web.params import LAST_DAY, MAX_ID, PathId
from web.services import deals as service

router = APIRouter(prefix="/api/v1/deals", tags=["deals"], responses=API_ERRORS)
DEFAULT_LIMIT = 200
MAX_LIMIT = 500
MAX_PAGE = 100_000


class QuoteRef(BaseModel):
    id: int
    title: str
    status: str
    version: int
    net_amount: int
    currency: str


class ProposalRef(BaseModel):
    id: int
    title: str
    status: str


class EnvelopeRef(BaseModel):
    id: int
    title: str
    status: str


class WaitingOut(BaseModel):
    who: str = Field(description="a person, or the queue of a role")
    what: str
    since: dt.datetime | None


class EventOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    entity: str
    data: dict[str, Any]


class DealSummary(BaseModel):
    id: int
    name: str
    stage: str
    account_id: int
    account: str
    owner_id: int
    owner: str
    amount: int = Field(description="minor units of currency")
    currency: str
    forecast_category: str
    expected_close: dt.date | None
    lost_reason: str

    @classmethod
    def of(cls, d: Deal) -> DealSummary:
        return cls(id=d.id, name=d.name, stage=d.stage, account_id=d.account_id,
                   account=d.account.name, owner_id=d.owner_id, owner=d.owner.name,
                   amount=d.amount, currency=d.currency, forecast_category=d.forecast_category,
                   expected_close=d.expected_close, lost_reason=d.lost_reason)


class StepOut(BaseModel):
    workflow_id: str
    workflow_type: str
    step: str = Field(description="rfp, approval, proposal or signing")
    status: str = Field(description="running, or how the step ended")
    started_at: str
    closed_at: str | None


class ProcessOut(BaseModel):
    status: str = Field(description="open, won or lost")
    stage: str
    steps: list[StepOut] = Field(description="the deal's child workflows, in start order")


class DealOut(DealSummary):
    quotes: list[QuoteRef]
    proposals: list[ProposalRef]
    envelopes: list[EnvelopeRef]
    waiting_on: list[WaitingOut] = Field(description="who the deal waits on, and for what")
    timeline: list[EventOut] = Field(description="audit rows of the deal and of its quotes, "
                                     "proposals and envelopes, oldest first")
    process: ProcessOut | None = Field(
        default=None, description="the deal's DealWorkflow as it answers its state query; "
        "null when it has not started (no step yet) or Temporal did not answer in time")


def _out(session: Session, d: Deal) -> DealOut:
    links = service.linked(session, d)
    return DealOut(
        **DealSummary.of(d).model_dump(),
        quotes=[QuoteRef(id=q.id, title=q.title, status=q.status, version=q.version,
                         net_amount=q.net_amount, currency=q.currency) for q in links.quotes],
        proposals=[ProposalRef(id=p.id, title=p.title, status=p.status)
                   for p in links.proposals],
        envelopes=[EnvelopeRef(id=e.id, title=e.title, status=e.status)
                   for e in links.envelopes],
        waiting_on=[WaitingOut(who=w.who, what=w.what, since=w.since)
                    for w in service.waiting_on(session, links)],
        timeline=[EventOut(id=e.id, at=e.at, actor=e.actor, action=e.action, entity=e.entity,
                           data=e.data) for e in service.timeline(session, d.id, links)])


def _read(session: Session, user: User, deal_id: int) -> DealOut:
    return _out(session, service.visible(session, user, deal_id))


@router.post("", response_model=DealOut, status_code=201)
def create(body: service.DealFields, user: CurrentUser, session: SessionDep,
           idempotency_key: IdempotencyKey = None) -> DealOut:
    """A new deal at intake, owned by you."""
    d = service.create_deal(session, user, body, idempotency_key)
    session.commit()
    return _out(session, d)


@router.get("", response_model=list[DealSummary])
def list_all(user: CurrentUser, session: SessionDep,
             stage: Annotated[str, Query(max_length=20)] = "",
             owner_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
             forecast: Annotated[str, Query(
                 max_length=20, description=", ".join(FORECAST_CATEGORIES))] = "",
             closes_after: Annotated[dt.date | None, Query(
                 le=LAST_DAY, description="expected to close after this day")] = None,
             closes_before: Annotated[dt.date | None, Query(
                 le=LAST_DAY, description="expected to close before this day")] = None,
             q: Annotated[str, Query(max_length=200,
                                     description="part of the deal's or account's name")] = "",
             page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page, from 1 (a page "
                                        "past the end gives the last)")] = 1,
             limit: Annotated[int, Query(ge=1, le=MAX_LIMIT,
                                         description="deals per page")] = DEFAULT_LIMIT
             ) -> list[DealSummary]:
    """The deals you see, recently changed first, ``limit`` a page."""
    found = service.list_deals(session, user, service.DealFilter(
        stage=stage, owner_id=owner_id, forecast=forecast, closes_after=closes_after,
        closes_before=closes_before, q=q), page=page, limit=limit)
    return [DealSummary.of(d) for d in found.items]


@router.get("/{deal_id}", response_model=DealOut)
async def get(deal_id: PathId, user: CurrentUser, session: SessionDep,
              client: MaybeClientDep, settings: SettingsDep) -> DealOut:
    """The deal, what it waits on, its timeline and its process's steps."""
    out = await in_session(session, _read, user, deal_id)
    state = await service.process_state(client, settings.workflow_prefix, deal_id)
    if state is not None:
        out.process = ProcessOut(status=state.status, stage=state.stage, steps=[
            StepOut(**dataclasses.asdict(c)) for c in state.children])
    return out


class LostIn(BaseModel):
    reason: str = Field(max_length=service.MAX_REASON, description="why the deal was lost")


@router.post("/{deal_id}/lost", response_model=DealOut)
async def lost(deal_id: PathId, body: LostIn, user: CurrentUser, session: SessionDep,
               client: MaybeClientDep, settings: SettingsDep) -> DealOut:
    """Close the deal as lost; its process cancels every running step (approval chains,
    proposal reviews, envelopes, RFP responses). A won deal is a 409, a missing reason a
    422."""
    d = await service.close_lost(session, client, user, deal_id, body.reason,
                                 task_queue=settings.task_queue,
                                 prefix=settings.workflow_prefix)
    return await in_session(session, _out, d)
