"""Subscriptions and renewals over the JSON API: list and read subscriptions, the renewals
due within 30/60/90/120 days with their summary, and the changes (cancel, renew early, change
the term, add an add-on), each an Update on the subscription's RenewalWorkflow (the use
cases are web/services/subscriptions.py and, for the renewals, web/services/renewals.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from store.models import User
from web.auth import CurrentUser
from web.deps import ClientDep, IdempotencyKey, SessionDep, SettingsDep, in_session
from web.errors import API_ERRORS
from web.params import MAX_ID, Label, PathId
from web.services import renewals as renewals_view
from web.services import subscriptions as service
from workflows.renewal_messages import RenewalState

router = APIRouter(prefix="/api/v1", tags=["subscriptions"], responses=API_ERRORS)


class SubscriptionSummary(BaseModel):
    id: int
    name: str
    account_id: int
    account: str
    owner_id: int
    owner: str
    status: str = Field(description="active, cancelling or churned")
    currency: str
    arr: int = Field(description="annual recurring revenue, minor units, add-ons included")
    term_number: int
    term_start: dt.date
    term_end: dt.date = Field(description="the current term's last day")
    term_months: int
    renews_on: dt.date = Field(description="the day after the term's last day")
    days_to_renewal: int
    notice_days: int
    term_end_action: str = Field(description="renew, evergreen or cancel")
    uplift_pct: str
    renewal_pricing: str = Field(description="how the renewal quote prices the contracted "
                                             "lines: uplift, list or same")
    health_band: str | None = Field(description="the account's current band: good, at_risk "
                                                "or critical (null: not scored)")
    at_risk: bool = Field(description="flagged by the renewal process, or the account's band "
                                      "is at_risk or critical")
    risk_reason: str

    @classmethod
    def of(cls, r: service.Row) -> SubscriptionSummary:
        s = r.sub
        return cls(id=s.id, name=s.name, account_id=s.account_id, account=s.account.name,
                   owner_id=s.owner_id, owner=s.owner.name, status=s.status,
                   currency=s.currency, arr=s.arr, term_number=s.term_number,
                   term_start=s.term_start, term_end=s.term_end, term_months=s.term_months,
                   renews_on=r.renews_on, days_to_renewal=r.days_left,
                   notice_days=s.notice_days, term_end_action=s.term_end_action,
                   uplift_pct=s.uplift_pct, renewal_pricing=s.renewal_pricing,
                   health_band=r.band, at_risk=r.at_risk,
                   risk_reason=s.risk_reason)


class TermOut(BaseModel):
    number: int
    start: dt.date
    end: dt.date
    quote_id: int
    arr: int
    outcome: str | None = Field(description="renewed, auto_renewed or churned; null while "
                                            "the term runs")


class AddOnOut(BaseModel):
    id: int
    term_number: int
    description: str
    arr_delta: int
    prorated: int = Field(description="the first charge, prorated to the term's end")
    starts_on: dt.date


class PartyOut(BaseModel):
    role: str
    name: str
    email: str | None = None


class ContractOut(BaseModel):
    id: int
    quote_id: int
    deal_id: int | None
    envelope_id: int | None
    kind: str
    parties: list[PartyOut]
    start_date: dt.date
    end_date: dt.date
    term_months: int
    sealed_sha256: str | None = Field(description="the signed PDF's SHA-256, when a signed "
                                                  "envelope won the deal")
    template: str | None = Field(description="the contract template the signed document was "
                                             "made from (order_form, mutual_nda); null when "
                                             "won by hand or signed as an uploaded file")


class SubscriptionOut(SubscriptionSummary):
    health_score: int | None
    cancel_reason: str
    renewal_quote_id: int | None
    contract: ContractOut
    terms: list[TermOut] = Field(description="the renewal history, newest first")
    add_ons: list[AddOnOut]


def _out(v: service.SubscriptionView) -> SubscriptionOut:
    c = v.contract
    return SubscriptionOut(
        **SubscriptionSummary.of(v.row).model_dump(),
        health_score=v.row.score, cancel_reason=v.sub.cancel_reason,
        renewal_quote_id=v.sub.renewal_quote_id,
        contract=ContractOut(
            id=c.id, quote_id=c.quote_id, deal_id=c.deal_id, envelope_id=c.envelope_id,
            kind=c.kind, parties=[PartyOut(role=str(p.get("role", "")),
                                           name=str(p.get("name", "")), email=p.get("email"))
                                  for p in c.parties if isinstance(p, dict)],
            start_date=c.start_date, end_date=c.end_date, term_months=c.term_months,
            sealed_sha256=c.sealed_sha256, template=c.template),
        terms=[TermOut(number=t.number, start=t.start, end=t.end, quote_id=t.quote_id,
                       arr=t.arr, outcome=t.outcome) for t in v.terms],
        add_ons=[AddOnOut(id=a.id, term_number=a.term_number, description=a.description,
                          arr_delta=a.arr_delta, prorated=a.prorated, starts_on=a.starts_on)
                 for a in v.add_ons])


def _read(session: Session, user: User, subscription_id: int) -> SubscriptionOut:
    return _out(service.get_subscription(session, user, subscription_id))


@router.get("/subscriptions", response_model=list[SubscriptionSummary])
def list_all(user: CurrentUser, session: SessionDep,
             status: Annotated[str, Query(max_length=20, description="active, cancelling or "
                                                                     "churned")] = "",
             account: Annotated[str, Query(max_length=200, description="an account's id, or "
                                                                       "part of its name")] = "",
             limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = 100,
             offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> list[SubscriptionSummary]:
    """The subscriptions you see, soonest renewal first."""
    return [SubscriptionSummary.of(r) for r in service.list_subscriptions(
        session, user, status=status or None, account=account or None, limit=limit,
        offset=offset)]


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
def get(subscription_id: PathId, user: CurrentUser, session: SessionDep) -> SubscriptionOut:
    return _read(session, user, subscription_id)


class RenewalsSummaryOut(BaseModel):
    count: int
    arr: int = Field(description="ARR up for renewal in the window (minor units)")
    arr_at_risk: int
    currency_note: str
    grr: float | None = Field(description="gross revenue retention over the trailing 12 "
                                          "months, 0–1: the ARR of terms that ended and "
                                          "renewed (at their pre-renewal ARR) over the ARR of "
                                          "all terms that ended; null when none ended")


class RenewalsOut(BaseModel):
    within_days: int
    summary: RenewalsSummaryOut
    renewals: list[SubscriptionSummary] = Field(description="this page of the window's "
                                                            "renewals, soonest first")
    page: int = Field(description="this page, from 1 (a page past the end gives the last)")
    limit: int = Field(description="rows per page")
    pages: int = Field(description="how many pages the window's renewals fill (at least 1)")
    total: int = Field(description="the window's renewals on every page (summary.count)")
    next: str | None = Field(description="the next page's URL; null on the last page")
    prev: str | None = Field(description="the previous page's URL; null on the first page")


def _page_url(within_days: int, page: int, limit: int) -> str:
    return "/api/v1/renewals?" + urlencode({"within_days": within_days, "page": page,
                                            "limit": limit})


@router.get("/renewals", response_model=RenewalsOut)
def renewals(user: CurrentUser, session: SessionDep,
             within_days: Annotated[int, Query(ge=0, le=10_000, description="30, 60, 90 or "
                                                                            "120")] = 90,
             page: Annotated[int, Query(ge=1, le=renewals_view.MAX_PAGE,
                                        description="page, from 1")] = 1,
             limit: Annotated[int, Query(ge=1, le=renewals_view.MAX_LIMIT,
                                         description="rows per page")] = renewals_view.PER_PAGE
             ) -> RenewalsOut:
    """Active and cancelling subscriptions renewing within the window, soonest first, a page
    at a time, with the whole window's summary."""
    r = renewals_view.renewals(session, user, within_days, page=page, limit=limit)
    s, p = r.summary, r.page
    return RenewalsOut(
        within_days=r.within_days,
        summary=RenewalsSummaryOut(count=s.count, arr=s.arr, arr_at_risk=s.arr_at_risk,
                                   currency_note=s.currency_note,
                                   grr=float(s.grr) if s.grr is not None else None),
        renewals=[SubscriptionSummary.of(row) for row in p.items],
        page=p.number, limit=p.size, pages=p.pages, total=p.total,
        next=_page_url(r.within_days, p.number + 1, p.size) if p.has_next else None,
        prev=_page_url(r.within_days, p.number - 1, p.size) if p.has_prev else None)


class StateOut(BaseModel):
    """The renewal process's state after the change."""

    subscription_id: int
    term_number: int
    status: str
    renews_on: str
    next_reminder_on: str | None
    renewal_quote_id: int | None
    reminders_sent: list[int]

    @classmethod
    def of(cls, s: RenewalState) -> StateOut:
        return cls(subscription_id=s.subscription_id, term_number=s.term_number,
                   status=s.status, renews_on=s.renews_on,
                   next_reminder_on=s.next_reminder_on, renewal_quote_id=s.renewal_quote_id,
                   reminders_sent=list(s.reminders_sent))


class ChangeOut(BaseModel):
    state: StateOut
    subscription: SubscriptionOut


def _fresh(session: Session, user: User, subscription_id: int) -> SubscriptionOut:
    """The subscription as the renewal process left it (not as this session read it before
    the change)."""
    session.expire_all()
    return _read(session, user, subscription_id)


async def _changed(session: Session, user: User, subscription_id: int,
                   state: RenewalState) -> ChangeOut:
    sub = await in_session(session, _fresh, user, subscription_id)
    return ChangeOut(state=StateOut.of(state), subscription=sub)


class CancelIn(BaseModel):
    reason: str = Field(default="", max_length=service.MAX_REASON,
                        description="why (3–500 characters)")


@router.post("/subscriptions/{subscription_id}/cancel", response_model=ChangeOut)
async def cancel(subscription_id: PathId, body: CancelIn, user: CurrentUser,
                 session: SessionDep, client: ClientDep, settings: SettingsDep) -> ChangeOut:
    """Cancel at the end of the current term: it runs to its end, then churns."""
    state = await service.cancel(session, client, settings.workflow_prefix, user,
                                 subscription_id, body.reason)
    return await _changed(session, user, subscription_id, state)


@router.post("/subscriptions/{subscription_id}/renew-early", response_model=ChangeOut)
async def renew_early(subscription_id: PathId, user: CurrentUser, session: SessionDep,
                      client: ClientDep, settings: SettingsDep) -> ChangeOut:
    """Renew now: the current term ends today as renewed, the next (uplifted) starts today."""
    state = await service.renew_early(session, client, settings.workflow_prefix, user,
                                      subscription_id)
    return await _changed(session, user, subscription_id, state)


class TermIn(BaseModel):
    term_end: str | None = Field(default=None, max_length=40,
                                 description="the term's new last day, YYYY-MM-DD, after its "
                                             "start")
    notice_days: int | None = Field(default=None, ge=-1, le=10_000,
                                    description="0–365, shorter than the term")
    term_end_action: str | None = Field(default=None, max_length=40,
                                        description="renew, evergreen or cancel")
    uplift_pct: str | None = Field(default=None, max_length=40,
                                   description="a percentage 0–100 as text, e.g. \"3.5\"")
    renewal_pricing: str | None = Field(default=None, max_length=40,
                                        description="uplift, list or same")


@router.patch("/subscriptions/{subscription_id}/term", response_model=ChangeOut)
async def change_term(subscription_id: PathId, body: TermIn, user: CurrentUser,
                      session: SessionDep, client: ClientDep,
                      settings: SettingsDep) -> ChangeOut:
    """Change the current term; a field left out stays."""
    state = await service.change_term(
        session, client, settings.workflow_prefix, user, subscription_id,
        service.TermChange(body.term_end, body.notice_days, body.term_end_action,
                           body.uplift_pct, body.renewal_pricing))
    return await _changed(session, user, subscription_id, state)


class AddOnIn(BaseModel):
    description: Label = ""
    arr_delta: int = Field(ge=-(2**63), le=2**63,
                           description=f"ARR added, minor units, 1 … {service.MAX_ARR_DELTA}")


@router.post("/subscriptions/{subscription_id}/add-ons", response_model=ChangeOut)
async def add_on(subscription_id: PathId, body: AddOnIn, user: CurrentUser,
                 session: SessionDep, client: ClientDep, settings: SettingsDep,
                 idempotency_key: IdempotencyKey = None) -> ChangeOut:
    """An add-on co-terminated with the current term (its first charge prorated); a retry
    with the same Idempotency-Key adds nothing."""
    state = await service.add_on(session, client, settings.workflow_prefix, user,
                                 subscription_id, body.description, body.arr_delta,
                                 idempotency_key)
    return await _changed(session, user, subscription_id, state)
