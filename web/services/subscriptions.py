"""Subscriptions: one place for the subscription pages, the API and the changes a person
makes to a subscription through its RenewalWorkflow (the renewals view, its summary, chart and
pages, is :mod:`web.services.renewals`, on this module's rules).

A won deal leaves a contract and a subscription (``store/subscriptions.py``); the
subscription's RenewalWorkflow (``renewal-{id}``) owns what happens to it next. Reading is
from the store; every change (cancel, change the term, renew early, add an add-on) is an
Update on the workflow, validated and authorised here first, so the API and the pages refuse
the same things with the same messages and nothing reaches the workflow that it would refuse
for a reason we can name at the field.

**Who may do what.** An owner sees their own subscriptions; the deal desk, finance, the CFO,
customer success, sales managers, auditors and admins see all (404 otherwise). The owner, the
deal desk, customer success and admins change one, never an auditor, whatever else they hold.

**At risk.** A renewal is at risk when its subscription is flagged (``at_risk``, with
``risk_reason``, set by the renewal process) or its account's current health band
(``store.health.AccountHealth``) is ``at_risk`` or ``critical``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client

from cpq.renewal import RENEWAL_METHODS
from store import starts
from store.db import in_session
from store.health import AccountHealth
from store.models import Account, User
from store.subscriptions import (
    STATUSES,
    TERM_END_ACTIONS,
    Contract,
    Subscription,
    SubscriptionAddOn,
    SubscriptionTerm,
    renewal_workflow_id,
    renews_on,
)
from web.errors import Conflict, Forbidden, Invalid, NotFound
from web.params import MAX_ID
from web.services.refusals import execute_update
from workflows.renewal_messages import AddOn, Cancel, ChangeTerm, RenewalState, RenewEarly
from workflows.rules import READ_ONLY_ROLES

READ_ALL = frozenset({"deal_desk", "finance", "cfo", "csm", "sales_manager", "auditor", "admin"})
CHANGERS = frozenset({"deal_desk", "csm", "admin"})
"""Who changes someone else's subscription (the owner changes their own)."""
RISKY_BANDS = ("at_risk", "critical")
MAX_LIMIT = 500
MAX_ARR_DELTA = 2**53 - 1
MAX_NOTICE = 365
MIN_REASON, MAX_REASON = 3, 500
MAX_DESCRIPTION = 200
STATE_TIMEOUT = dt.timedelta(seconds=3)
ENDED = "this subscription's renewal process has ended"
SERVICE = "renewal process"


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# --- who --------------------------------------------------------------------------------


def reads_all(user: User) -> bool:
    return bool(user.roles & READ_ALL)


def sees(user: User, sub: Subscription) -> bool:
    return sub.owner_id == user.id or reads_all(user)


def may_change(user: User, sub: Subscription) -> bool:
    """Whether this user may cancel, change, renew early or add to the subscription (the
    page offers the forms only then)."""
    if user.roles.intersection(READ_ONLY_ROLES):
        return False
    return sub.owner_id == user.id or bool(user.roles & CHANGERS)


def visible(session: Session, user: User, subscription_id: int) -> Subscription:
    """The subscription if this user may read it; otherwise it doesn't exist for them."""
    sub = session.get(Subscription, subscription_id)
    if sub is None or not sees(user, sub):
        raise NotFound(f"no subscription {subscription_id}")
    return sub


def changeable(session: Session, user: User, subscription_id: int) -> Subscription:
    sub = visible(session, user, subscription_id)
    if not may_change(user, sub):
        raise Forbidden(f"only the subscription's owner ({sub.owner.name}), the deal "
                             "desk, customer success or an admin changes it")
    if sub.status == "churned":
        raise Conflict("this subscription has churned: nothing to change any more")
    return sub


# --- reading ----------------------------------------------------------------------------


def bands(session: Session, account_ids: Sequence[int]) -> dict[int, AccountHealth]:
    if not account_ids:
        return {}
    return {h.account_id: h for h in session.scalars(select(AccountHealth).where(
        AccountHealth.account_id.in_(sorted(set(account_ids)))))}


def risky(sub: Subscription, band: str | None) -> bool:
    return sub.at_risk or band in RISKY_BANDS


@dataclass(frozen=True)
class Row:
    """A subscription as a list or a renewals row shows it."""

    sub: Subscription
    renews_on: dt.date
    days_left: int
    band: str | None
    score: int | None
    at_risk: bool


def row_of(sub: Subscription, band: str | None, score: int | None, on: dt.date) -> Row:
    """The row as of ``on``, with the account's current band and score (None: not scored)."""
    day = renews_on(sub)
    return Row(sub, day, (day - on).days, band, score, risky(sub, band))


def _row(sub: Subscription, health: AccountHealth | None, on: dt.date) -> Row:
    return row_of(sub, health.band if health else None, health.score if health else None, on)


def _account_filter(account: str) -> Any:
    text = account.strip()
    if "\x00" in text:
        raise Invalid("account must not hold a NUL character", field="account")
    if text.isascii() and text.isdigit():
        number = int(text)
        if not 1 <= number <= MAX_ID:
            raise Invalid(f"account: no account {text}", field="account")
        return Subscription.account_id == number
    return Account.name.icontains(text, autoescape=True)


def list_subscriptions(session: Session, user: User, *, status: str | None = None,
                       account: str | None = None, limit: int = 100,
                       offset: int = 0) -> list[Row]:
    """The subscriptions this user sees, soonest renewal first; ``account`` is an account's
    id or part of its name."""
    if status and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", field="status")
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be from 1 to {MAX_LIMIT}", field="limit")
    query = (select(Subscription).join(Account, Account.id == Subscription.account_id)
             .order_by(Subscription.term_end, Subscription.id))
    if not reads_all(user):
        query = query.where(Subscription.owner_id == user.id)
    if status:
        query = query.where(Subscription.status == status)
    if account and account.strip():
        query = query.where(_account_filter(account))
    subs = list(session.scalars(query.limit(limit).offset(offset)).unique())
    health = bands(session, [s.account_id for s in subs])
    on = today()
    return [_row(s, health.get(s.account_id), on) for s in subs]


@dataclass(frozen=True)
class SubscriptionView:
    row: Row
    contract: Contract
    terms: list[SubscriptionTerm]
    """Newest first: the renewal history."""
    add_ons: list[SubscriptionAddOn]
    health: AccountHealth | None

    @property
    def sub(self) -> Subscription:
        return self.row.sub


def get_subscription(session: Session, user: User, subscription_id: int) -> SubscriptionView:
    sub = visible(session, user, subscription_id)
    contract = session.get(Contract, sub.contract_id)
    assert contract is not None
    terms = list(session.scalars(select(SubscriptionTerm).where(
        SubscriptionTerm.subscription_id == sub.id).order_by(SubscriptionTerm.number.desc())))
    add_ons = list(session.scalars(select(SubscriptionAddOn).where(
        SubscriptionAddOn.subscription_id == sub.id).order_by(SubscriptionAddOn.id)))
    health = session.get(AccountHealth, sub.account_id)
    return SubscriptionView(_row(sub, health, today()), contract, terms, add_ons, health)


async def process_state(client: Client | None, prefix: str,
                        subscription_id: int) -> RenewalState | None:
    """The renewal process's own view (its ``state`` query), or None when Temporal doesn't
    answer in time (the page says so quietly)."""
    if client is None:
        return None
    handle = client.get_workflow_handle(renewal_workflow_id(prefix, subscription_id))
    try:
        answer = await handle.query("state", result_type=RenewalState,
                                    rpc_timeout=STATE_TIMEOUT)
    except Exception:  # any failure (RPCError, a failed query): the page shows none
        return None
    return answer if isinstance(answer, RenewalState) else None


# --- validating a change ------------------------------------------------------------------


@dataclass(frozen=True)
class TermChange:
    """A term change as typed (strings from a form, or the API's values); None stays."""

    term_end: str | None = None
    notice_days: int | str | None = None
    term_end_action: str | None = None
    uplift_pct: str | None = None
    renewal_pricing: str | None = None


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_term(sub: Subscription, change: TermChange) -> ChangeTerm:
    """The change as the workflow's payload, each field checked against the current term:
    a 422 naming the first bad field."""
    end: dt.date | None = None
    if not _blank(change.term_end):
        text = str(change.term_end).strip()
        try:
            end = dt.date.fromisoformat(text) if len(text) == 10 else None
        except ValueError:
            end = None
        if end is None:
            raise Invalid(f"term_end: {text[:40]!r} is not a date (YYYY-MM-DD)",
                          field="term_end")
        if end <= sub.term_start:
            raise Invalid(f"term_end must be after the term's start ({sub.term_start})",
                          field="term_end")
    notice: int | None = None
    if not _blank(change.notice_days):
        raw = change.notice_days
        text = str(raw).strip()
        if isinstance(raw, bool) or not (isinstance(raw, int) or (text.isascii()
                                                                   and text.isdigit())):
            raise Invalid(f"notice_days: {text[:40]!r} is not a whole number of days",
                          field="notice_days")
        notice = int(text)
        if not 0 <= notice <= MAX_NOTICE:
            raise Invalid(f"notice_days must be from 0 to {MAX_NOTICE}", field="notice_days")
        length = ((end or sub.term_end) - sub.term_start).days + 1
        if notice >= length:
            raise Invalid(f"notice_days ({notice}) must be shorter than the term ({length} "
                          "days)", field="notice_days")
    action: str | None = None
    if not _blank(change.term_end_action):
        action = str(change.term_end_action).strip()
        if action not in TERM_END_ACTIONS:
            raise Invalid("term_end_action must be one of " + ", ".join(TERM_END_ACTIONS),
                          field="term_end_action")
    uplift: str | None = None
    if not _blank(change.uplift_pct):
        text = str(change.uplift_pct).strip()
        try:
            number = Decimal(text) if len(text) <= 12 else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise Invalid(f"uplift_pct: {text[:40]!r} is not a number", field="uplift_pct")
        if not Decimal(0) <= number <= Decimal(100):
            raise Invalid("uplift_pct must be from 0 to 100", field="uplift_pct")
        if number != number.quantize(Decimal("0.0001")):
            raise Invalid("uplift_pct: at most 4 decimal places", field="uplift_pct")
        uplift = format(number.quantize(Decimal("0.0001")).normalize(), "f")
    pricing: str | None = None
    if not _blank(change.renewal_pricing):
        pricing = str(change.renewal_pricing).strip()
        if pricing not in RENEWAL_METHODS:
            raise Invalid("renewal_pricing must be one of " + ", ".join(RENEWAL_METHODS),
                          field="renewal_pricing")
    if end is None and notice is None and action is None and uplift is None \
            and pricing is None:
        raise Invalid("change at least one of term_end, notice_days, term_end_action, "
                      "uplift_pct or renewal_pricing", field="term_end")
    return ChangeTerm(by_user_id=0, term_end=end.isoformat() if end else None,
                      notice_days=notice, term_end_action=action, uplift_pct=uplift,
                      renewal_pricing=pricing)


def check_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if "\x00" in text:
        raise Invalid("the reason must not hold a NUL character", field="reason")
    if not MIN_REASON <= len(text) <= MAX_REASON:
        raise Invalid(f"say why it is cancelled ({MIN_REASON} to {MAX_REASON} characters)",
                      field="reason")
    return text


def check_add_on(description: str | None, arr_delta: object) -> tuple[str, int]:
    text = (description or "").strip()
    if "\x00" in text:
        raise Invalid("the description must not hold a NUL character", field="description")
    if not 1 <= len(text) <= MAX_DESCRIPTION:
        raise Invalid(f"describe the add-on (1 to {MAX_DESCRIPTION} characters)",
                      field="description")
    raw = arr_delta.strip() if isinstance(arr_delta, str) else arr_delta
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 20:
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise Invalid("arr_delta must be a whole number of minor units", field="arr_delta")
    if not 1 <= raw <= MAX_ARR_DELTA:
        raise Invalid(f"arr_delta must be from 1 to {MAX_ARR_DELTA:,}", field="arr_delta")
    return text, raw


def add_on_key(user: User, subscription_id: int, key: str | None) -> str:
    """``AddOn.key``: the client's Idempotency-Key scoped to the user and the subscription
    (hashed, to fit the store's 200 characters), or a fresh uuid without one."""
    if not key or not key.strip():
        return f"addon-{uuid.uuid4().hex}"
    digest = hashlib.sha256(key.strip().encode()).hexdigest()[:40]
    return f"addon-u{user.id}-s{subscription_id}-{digest}"


# --- changing -----------------------------------------------------------------------------


def _state(answer: object) -> RenewalState:
    if isinstance(answer, RenewalState):
        return answer
    if isinstance(answer, dict):
        return RenewalState(**answer)
    raise TypeError(f"the renewal process answered {type(answer).__name__}")


async def _update(session: Session, client: Client, prefix: str, subscription_id: int,
                  name: str, payload: object) -> RenewalState:
    """The Update on the subscription's RenewalWorkflow. A subscription won a moment ago may
    have its workflow's start still pending (the reconciler starts it within seconds): it is
    started here first, so the change isn't refused as if the process had ended."""
    wid = renewal_workflow_id(prefix, subscription_id)
    await starts.start_now(client, session, wid)
    answer = await execute_update(client, wid, name, payload, ended=ENDED, service=SERVICE)
    return _state(answer)


async def cancel(session: Session, client: Client, prefix: str, user: User,
                 subscription_id: int, reason: str | None) -> RenewalState:
    """Cancel at the end of the current term (it churns then)."""
    await in_session(session, changeable, user, subscription_id)
    text = check_reason(reason)
    return await _update(session, client, prefix, subscription_id, "cancel",
                         Cancel(user.id, text))


async def renew_early(session: Session, client: Client, prefix: str, user: User,
                      subscription_id: int) -> RenewalState:
    await in_session(session, changeable, user, subscription_id)
    return await _update(session, client, prefix, subscription_id, "renew_early",
                         RenewEarly(user.id))


def _checked_term(session: Session, user: User, subscription_id: int,
                  change: TermChange) -> ChangeTerm:
    sub = changeable(session, user, subscription_id)
    checked = check_term(sub, change)
    return dataclasses.replace(checked, by_user_id=user.id)


async def change_term(session: Session, client: Client, prefix: str, user: User,
                      subscription_id: int, change: TermChange) -> RenewalState:
    payload = await in_session(session, _checked_term, user, subscription_id, change)
    return await _update(session, client, prefix, subscription_id, "change_term", payload)


async def add_on(session: Session, client: Client, prefix: str, user: User,
                 subscription_id: int, description: str | None, arr_delta: object,
                 idempotency_key: str | None = None) -> RenewalState:
    """An add-on co-terminated with the current term; a retry with the same Idempotency-Key
    adds nothing."""
    await in_session(session, changeable, user, subscription_id)
    text, delta = check_add_on(description, arr_delta)
    payload = AddOn(user.id, text, delta, add_on_key(user, subscription_id, idempotency_key))
    return await _update(session, client, prefix, subscription_id, "add_on", payload)
