"""The renewals pages: ``/renewals`` (the renewals due within 30/60/90/120 days: summary
cards, ARR renewing per month as an inline SVG bar chart, the table) and a subscription's page
(its terms and renewal history, add-ons, contract, health and risk, the renewal process's
state, and the forms that change it through RenewalWorkflow)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from cpq.renewal import METHOD_NOTES, RENEWAL_METHODS
from store.models import User
from store.subscriptions import TERM_END_ACTIONS
from web.auth import CurrentUser
from web.deps import ClientDep, MaybeClientDep, SessionDep, SettingsDep, in_session
from web.errors import AppError, Conflict, Forbidden, Invalid, Unavailable
from web.params import PathId, form_amount
from web.render import render
from web.services import renewals as renewals_view
from web.services import subscriptions as service

router = APIRouter(include_in_schema=False)
CHART_W, CHART_H, LABEL_H = 420, 140, 22


@dataclass(frozen=True)
class Bar:
    x: float
    w: float
    label: str
    arr: int
    arr_at_risk: int
    y: float
    """The top of the whole bar."""
    risk_y: float
    """The top of the at-risk part (drawn at the bar's bottom)."""


def chart_bars(buckets: list[renewals_view.Bucket]) -> list[Bar]:
    """One bar per month, scaled to the largest month; the at-risk part at the bottom."""
    top = max((b.arr for b in buckets), default=0) or 1
    slot = CHART_W / max(len(buckets), 1)
    bars = []
    for n, b in enumerate(buckets):
        height = (CHART_H - 8) * b.arr / top
        risk = (CHART_H - 8) * b.arr_at_risk / top
        bars.append(Bar(round(n * slot + slot * 0.2, 1), round(slot * 0.6, 1), b.label, b.arr,
                        b.arr_at_risk, round(CHART_H - height, 1), round(CHART_H - risk, 1)))
    return bars


def _whole(text: str, default: int, low: int, high: int) -> int:
    """A number from the query string, or ``default`` when it is not one from low to high
    (a page forgives a hand-edited URL; the API says 422)."""
    return int(text) if text.isascii() and text.isdigit() and low <= int(text) <= high \
        else default


@router.get("/renewals")
def renewals_page(request: Request, user: CurrentUser, session: SessionDep,
                  within_days: Annotated[str, Query(max_length=10)] = "90",
                  page: Annotated[str, Query(max_length=10)] = "1",
                  limit: Annotated[str, Query(max_length=10)] = "") -> Response:
    days = _whole(within_days, 90, 1, max(renewals_view.WINDOWS))
    days = days if days in renewals_view.WINDOWS else 90
    size = _whole(limit, renewals_view.PER_PAGE, 1, renewals_view.MAX_LIMIT)
    r = renewals_view.renewals(session, user, days,
                               page=_whole(page, 1, 1, renewals_view.MAX_PAGE), limit=size)
    # The links keep the window and a chosen page size; the tabs start at page 1.
    keep = {"within_days": days, "limit": size if size != renewals_view.PER_PAGE else ""}
    return render(request, "renewals.html", {
        "r": r, "windows": renewals_view.WINDOWS, "bars": chart_bars(r.buckets), "w": CHART_W,
        "h": CHART_H, "label_h": LABEL_H, "chart_days": renewals_view.CHART_DAYS,
        "keep": keep, "tab_limit": keep["limit"],
        "currency": r.summary.currencies[0] if len(r.summary.currencies) == 1 else "USD"})


def _page(session: Session, user: User, subscription_id: int) -> dict[str, Any]:
    v = service.get_subscription(session, user, subscription_id)
    return {"v": v, "s": v.sub, "may_change": service.may_change(user, v.sub)
            and v.sub.status != "churned", "actions": TERM_END_ACTIONS,
            "pricing_methods": RENEWAL_METHODS, "pricing_notes": METHOD_NOTES}


async def _show(request: Request, session: Session, client: Any, prefix: str, user: User,
                subscription_id: int, *, errors: dict[str, str] | None = None,
                values: dict[str, str] | None = None, error: str = "",
                status_code: int = 200) -> Response:
    ctx = await in_session(session, _page, user, subscription_id)
    ctx["state"] = await service.process_state(client, prefix, subscription_id)
    ctx.update(errors=errors or {}, values=values or {}, error=error,
               form_key=uuid.uuid4().hex)
    return render(request, "subscription.html", ctx, status_code=status_code)


@router.get("/subscriptions/{subscription_id}")
async def subscription_page(request: Request, subscription_id: PathId, user: CurrentUser,
                            session: SessionDep, client: MaybeClientDep,
                            settings: SettingsDep) -> Response:
    return await _show(request, session, client, settings.workflow_prefix, user,
                       subscription_id)


async def _refused(request: Request, session: Session, client: Any, prefix: str, user: User,
                   subscription_id: int, e: AppError, form: str,
                   values: dict[str, str]) -> Response:
    """The page again, the problem at its field (or over the form)."""
    if isinstance(e, Invalid) and e.field:
        errors = {f"{form}.{e.field}": e.message}
        error = ""
    else:
        errors, error = {}, e.message
    return await _show(request, session, client, prefix, user, subscription_id,
                       errors=errors, values=values, error=error, status_code=e.status)


CHANGE_ERRORS = (Invalid, Conflict, Forbidden, Unavailable)


@router.post("/subscriptions/{subscription_id}/cancel")
async def cancel(request: Request, subscription_id: PathId, user: CurrentUser,
                 session: SessionDep, client: ClientDep, settings: SettingsDep,
                 reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    try:
        await service.cancel(session, client, settings.workflow_prefix, user, subscription_id,
                             reason)
    except CHANGE_ERRORS as e:
        return await _refused(request, session, client, settings.workflow_prefix, user,
                              subscription_id, e, "cancel", {"reason": reason})
    return RedirectResponse(f"/subscriptions/{subscription_id}", status_code=303)


@router.post("/subscriptions/{subscription_id}/renew-early")
async def renew_early(request: Request, subscription_id: PathId, user: CurrentUser,
                      session: SessionDep, client: ClientDep,
                      settings: SettingsDep) -> Response:
    try:
        await service.renew_early(session, client, settings.workflow_prefix, user,
                                  subscription_id)
    except CHANGE_ERRORS as e:
        return await _refused(request, session, client, settings.workflow_prefix, user,
                              subscription_id, e, "renew", {})
    return RedirectResponse(f"/subscriptions/{subscription_id}", status_code=303)


@router.post("/subscriptions/{subscription_id}/term")
async def change_term(request: Request, subscription_id: PathId, user: CurrentUser,
                      session: SessionDep, client: ClientDep, settings: SettingsDep,
                      term_end: Annotated[str, Form(max_length=40)] = "",
                      notice_days: Annotated[str, Form(max_length=40)] = "",
                      term_end_action: Annotated[str, Form(max_length=40)] = "",
                      uplift_pct: Annotated[str, Form(max_length=40)] = "",
                      renewal_pricing: Annotated[str, Form(max_length=40)] = "") -> Response:
    values = {"term_end": term_end, "notice_days": notice_days,
              "term_end_action": term_end_action, "uplift_pct": uplift_pct,
              "renewal_pricing": renewal_pricing}
    try:
        await service.change_term(session, client, settings.workflow_prefix, user,
                                  subscription_id, service.TermChange(**values))
    except CHANGE_ERRORS as e:
        return await _refused(request, session, client, settings.workflow_prefix, user,
                              subscription_id, e, "term", values)
    return RedirectResponse(f"/subscriptions/{subscription_id}", status_code=303)


@router.post("/subscriptions/{subscription_id}/add-ons")
async def add_on(request: Request, subscription_id: PathId, user: CurrentUser,
                 session: SessionDep, client: ClientDep, settings: SettingsDep,
                 description: Annotated[str, Form(max_length=400)] = "",
                 arr_delta: Annotated[str, Form(max_length=40)] = "",
                 key: Annotated[str, Form(max_length=200)] = "") -> Response:
    """``key``: the form's own idempotency key (a double submit adds one add-on)."""
    values = {"description": description, "arr_delta": arr_delta}
    try:
        amount = form_amount(arr_delta, "arr_delta")  # typed in major units, with cents
        await service.add_on(session, client, settings.workflow_prefix, user, subscription_id,
                             description, amount, key or None)
    except CHANGE_ERRORS as e:
        return await _refused(request, session, client, settings.workflow_prefix, user,
                              subscription_id, e, "addon", values)
    return RedirectResponse(f"/subscriptions/{subscription_id}", status_code=303)
