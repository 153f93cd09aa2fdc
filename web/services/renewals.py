"""The renewals view, shared by ``/renewals`` and ``GET /api/v1/renewals``: the active and
cancelling subscriptions renewing within 30, 60, 90 or 120 days, their summary, ARR renewing
per month over the next :data:`CHART_DAYS` days, and one page of the rows, soonest first.

It reads at the scale of a whole book (tens of thousands of subscriptions, thousands renewing
within a window) without loading it: the summary and the chart are one SQL aggregate (GROUP BY
month, in the window or not, at risk or not, currency), the page is one ``LIMIT``/``OFFSET``
query of at most ``limit`` rows, and the total is the summary's count. What a row shows, who
sees which subscription and what "at risk" means are :mod:`web.services.subscriptions`'s.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from store.health import AccountHealth
from store.models import User
from store.subscriptions import Subscription, SubscriptionTerm, add_months
from web import paging
from web.errors import Invalid
from web.paging import Page
from web.services import subscriptions as subs
from web.services.subscriptions import RISKY_BANDS, Row, reads_all, row_of

WINDOWS = (30, 60, 90, 120)
"""The renewal windows (days ahead) the renewals view offers."""
CHART_DAYS = 120
GRR_DAYS = 365
RENEWING = ("active", "cancelling")
PER_PAGE = paging.PER_PAGE
"""Rows a page unless ``limit`` says otherwise, as on the list pages."""
MAX_LIMIT = subs.MAX_LIMIT
MAX_PAGE = 100_000


@dataclass(frozen=True)
class Bucket:
    """One calendar month of the renewals chart."""

    month: dt.date
    """Its first day."""
    arr: int
    arr_at_risk: int

    @property
    def label(self) -> str:
        return self.month.strftime("%b %Y")


@dataclass(frozen=True)
class Summary:
    count: int
    arr: int
    arr_at_risk: int
    currencies: list[str]
    grr: Decimal | None
    """Gross revenue retention over the trailing 12 months, 0 … 1 (None: no term ended)."""

    @property
    def currency_note(self) -> str:
        if not self.currencies:
            return "amounts are minor units of each subscription's currency"
        if len(self.currencies) == 1:
            return f"amounts are minor units of {self.currencies[0]}"
        return (f"amounts in {', '.join(self.currencies)} are added without conversion "
                "(minor units)")


@dataclass(frozen=True)
class Renewals:
    within_days: int
    page: Page[Row]
    """This page of the window's rows, soonest renewal first; ``page.total`` is
    ``summary.count``."""
    summary: Summary
    buckets: list[Bucket]

    @property
    def rows(self) -> list[Row]:
        return self.page.items


def check_window(within_days: int) -> int:
    if within_days not in WINDOWS:
        raise Invalid("within_days must be one of " + ", ".join(map(str, WINDOWS)),
                      field="within_days")
    return within_days


def check_paging(page: int, limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be from 1 to {MAX_LIMIT}", field="limit")
    if not 1 <= page <= MAX_PAGE:
        raise Invalid(f"page must be from 1 to {MAX_PAGE}", field="page")


def _renewing(user: User, on: dt.date, days: int) -> list[Any]:
    """Active and cancelling subscriptions renewing from ``on`` to ``on + days`` that this
    user sees (a term renews the day after its last: ``term_end`` from ``on - 1``)."""
    where = [Subscription.status.in_(RENEWING),
             Subscription.term_end >= on - dt.timedelta(days=1),
             Subscription.term_end <= on + dt.timedelta(days=days - 1)]
    if not reads_all(user):
        where.append(Subscription.owner_id == user.id)
    return where


def chart_months(on: dt.date) -> list[dt.date]:
    """The first days of the months the chart shows: this month to the one
    :data:`CHART_DAYS` days ahead."""
    last = on + dt.timedelta(days=CHART_DAYS)
    months = [on.replace(day=1)]
    while add_months(months[-1], 1) <= last:
        months.append(add_months(months[-1], 1))
    return months


def _month_index(months: list[dt.date]) -> Any:
    """The chart month a subscription renews in, as an index into ``months``: it renews on
    ``term_end + 1``, so in month *i* when ``term_end < months[i + 1] - 1 day`` (120 days
    always span several months)."""
    return case(*((Subscription.term_end < nxt - dt.timedelta(days=1), i)
                  for i, nxt in enumerate(months[1:])), else_=len(months) - 1)


def _risky() -> Any:
    """1 when the renewal is at risk (as :func:`subscriptions.risky`), else 0; the account's
    band comes from the outer join with ``account_health`` (NULL: not scored)."""
    return case((or_(Subscription.at_risk.is_(True), AccountHealth.band.in_(RISKY_BANDS)), 1),
                else_=0)


def totals(session: Session, user: User, on: dt.date,
           within_days: int) -> tuple[Summary, list[Bucket]]:
    """The window's summary (its GRR included) and the chart's months from one aggregate over
    the next :data:`CHART_DAYS` days: a handful of groups, however many subscriptions."""
    months = chart_months(on)
    in_window = case((Subscription.term_end <= on + dt.timedelta(days=within_days - 1), 1),
                     else_=0)
    # Group the labelled expressions through a subquery: PostgreSQL would not match a GROUP
    # BY expression with its own bound dates to the same expression in the SELECT list.
    each = (select(_month_index(months).label("month"), in_window.label("in_window"),
                   _risky().label("risky"), Subscription.currency, Subscription.arr)
            .select_from(Subscription)
            .outerjoin(AccountHealth, AccountHealth.account_id == Subscription.account_id)
            .where(*_renewing(user, on, CHART_DAYS))
            .subquery())
    keys = (each.c.month, each.c.in_window, each.c.risky, each.c.currency)
    count, arr, arr_at_risk, currencies = 0, 0, 0, set()
    month_arr, month_risk = [0] * len(months), [0] * len(months)
    for month, inside, risky, currency, n, total in session.execute(
            select(*keys, func.count(), func.sum(each.c.arr)).group_by(*keys)):
        total = int(total or 0)  # PostgreSQL sums a BIGINT as NUMERIC
        month_arr[month] += total
        if risky:
            month_risk[month] += total
        if inside:
            count += n
            arr += total
            arr_at_risk += total if risky else 0
            currencies.add(currency)
    summary = Summary(count=count, arr=arr, arr_at_risk=arr_at_risk,
                      currencies=sorted(currencies),
                      grr=gross_revenue_retention(session, user, on))
    return summary, [Bucket(m, month_arr[i], month_risk[i]) for i, m in enumerate(months)]


def gross_revenue_retention(session: Session, user: User, on: dt.date) -> Decimal | None:
    """Gross revenue retention over the trailing 12 months.

    ``GRR = sum(arr of terms ended in the window that renewed or auto-renewed)
    / sum(arr of all terms ended in the window)``, where the window is the 365 days up to
    ``on`` (a term's ``end`` in ``on - 365 < end <= on``), a term counts as ended once its
    outcome is recorded (``renewed``, ``auto_renewed`` or ``churned``), and each term counts at
    its own ARR, i.e. the ARR before the renewal (no uplift, no expansion: GRR never exceeds
    1). Only the subscriptions this user sees count. None when no term ended in the window.
    """
    query = (select(SubscriptionTerm.outcome, func.sum(SubscriptionTerm.arr))
             .join(Subscription, Subscription.id == SubscriptionTerm.subscription_id)
             .where(SubscriptionTerm.outcome.is_not(None),
                    SubscriptionTerm.end > on - dt.timedelta(days=GRR_DAYS),
                    SubscriptionTerm.end <= on)
             .group_by(SubscriptionTerm.outcome))
    if not reads_all(user):
        query = query.where(Subscription.owner_id == user.id)
    sums = {outcome: int(total or 0) for outcome, total in session.execute(query)}
    ended = sum(sums.values())
    if not ended:
        return None
    kept = sums.get("renewed", 0) + sums.get("auto_renewed", 0)
    return (Decimal(kept) / Decimal(ended)).quantize(Decimal("0.0001"))


def page_of(session: Session, user: User, on: dt.date, within_days: int, total: int,
            page: int, limit: int) -> Page[Row]:
    """Page ``page`` (from 1; past the end: the last) of the window's ``total`` rows, soonest
    renewal first (then by id, so pages never overlap)."""
    number = min(page, max(1, math.ceil(total / limit)))
    query = (select(Subscription, AccountHealth.band, AccountHealth.score)
             .outerjoin(AccountHealth, AccountHealth.account_id == Subscription.account_id)
             .where(*_renewing(user, on, within_days))
             .order_by(Subscription.term_end, Subscription.id)
             .limit(limit).offset((number - 1) * limit))
    rows = [row_of(sub, band, score, on) for sub, band, score in session.execute(query)]
    return Page(rows, total, number, limit)


def renewals(session: Session, user: User, within_days: int, *, page: int = 1,
             limit: int = PER_PAGE, on: dt.date | None = None) -> Renewals:
    """Subscriptions renewing within ``within_days`` (30, 60, 90 or 120): the summary (count,
    ARR up for renewal, ARR at risk, GRR), the chart's months and page ``page`` of ``limit``
    rows, soonest first. ``on``: today unless a test says otherwise."""
    check_window(within_days)
    check_paging(page, limit)
    on = on or subs.today()
    summary, buckets = totals(session, user, on, within_days)
    rows = page_of(session, user, on, within_days, summary.count, page, limit)
    return Renewals(within_days, rows, summary, buckets)
