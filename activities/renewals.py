"""RenewalWorkflow's activities: every store change of a subscription's renewal.

Each is idempotent on a key of the workflow's (subscription, term, offset or activity id):
a retry after a crash finds its audit row, outbox row, quote or term already there and
changes nothing. Dates come from the workflow (``today``), never from this process's clock:
under a time-skipping server (the tests' years of renewals) the two differ.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.mail import Mailer
from cpq.renewal import RENEWAL_METHODS
from store import audit
from store.audit import entity
from store.db import write_lock
from store.models import Quote, User
from store.renewal_quotes import EVERGREEN_MONTHS, make_renewal_quote
from store.subscriptions import (
    TERM_END_ACTIONS,
    Subscription,
    SubscriptionAddOn,
    SubscriptionTerm,
    annual,
    renews_on,
    term_end,
    uplifted,
)
from store.who import Who
from workflows.renewal_messages import (
    ENDED,
    INVALID,
    AddOnInput,
    CancelInput,
    ChangeInput,
    Closed,
    RemindInput,
    TermInput,
    TermPlan,
)

WHO = Who.system("renewal")
REMINDER_DAYS = (120, 90, 60, 30)
QUOTE_DAYS = 90


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID, non_retryable=True)


class RenewalActivities:
    def __init__(self, sessions: sessionmaker[Session], mailer: Mailer, base_url: str,
                 reminder_days: tuple[int, ...] = REMINDER_DAYS,
                 quote_days: int = QUOTE_DAYS) -> None:
        self._sessions = sessions
        self._mailer = mailer
        self._base_url = base_url.rstrip("/")
        self._reminder_days = sorted(reminder_days, reverse=True)
        self._quote_days = quote_days

    def _sub(self, s: Session, subscription_id: int) -> Subscription:
        sub = s.get(Subscription, subscription_id, populate_existing=True)
        if sub is None:
            raise ApplicationError(f"no subscription {subscription_id}", type="NotFound",
                                   non_retryable=True)
        return sub

    def _plan(self, sub: Subscription) -> TermPlan:
        return TermPlan(sub.id, sub.term_number, sub.status, renews_on(sub).isoformat(),
                        list(self._reminder_days), self._quote_days, sub.renewal_quote_id,
                        sub.term_end_action)

    @activity.defn(name="renewal_plan")
    def renewal_plan(self, inp: TermInput) -> TermPlan:
        with self._sessions() as s:
            return self._plan(self._sub(s, inp.subscription_id))

    @activity.defn(name="remind_renewal")
    def remind_renewal(self, inp: RemindInput) -> None:
        """The owner's reminder ``days_before`` the renewal, once per term and offset."""
        key = f"renewal-{inp.subscription_id}-{inp.term_number}-{inp.days_before}d"
        with self._sessions() as s:
            write_lock(s)
            sub = self._sub(s, inp.subscription_id)
            quote = (f"Its renewal quote is ready: {self._base_url}/quotes/"
                     f"{sub.renewal_quote_id}\n" if sub.renewal_quote_id else "")
            audit.append(s, event_key=key, actor=WHO, action="subscription.reminded",
                         entity=entity("subscription", sub.id),
                         data={"term": inp.term_number, "days_before": inp.days_before,
                               "renews_on": renews_on(sub).isoformat()})
            to, name, status = sub.owner.email, sub.name, sub.status
            subject = f"{name} renews in {inp.days_before} days ({renews_on(sub):%d %b %Y})"
            body = (f"{sub.account.name}'s subscription {name} "
                    f"{'ends' if status == 'cancelling' else 'renews'} on "
                    f"{renews_on(sub):%d %B %Y} (notice period {sub.notice_days} days, "
                    f"then: {sub.term_end_action}).\n{quote}"
                    f"Subscription: {self._base_url}/subscriptions/{sub.id}\n")
            s.commit()
        self._mailer.deliver(self._mailer.queue(key, to, subject[:300], body))

    @activity.defn(name="make_renewal_quote")
    def make_renewal_quote(self, inp: TermInput) -> int:
        """The next term's quote, in a renewal deal, on the current price book
        (``store.renewal_quotes``); once per term. Without a discount it is approved at once
        (nothing for the chain to decide); with one it waits, as a draft, for the approval
        chain (``advance_renewal_quote`` submits it)."""
        with self._sessions() as s:
            write_lock(s)
            sub = self._sub(s, inp.subscription_id)
            if sub.renewal_quote_id is not None:
                s.commit()
                return sub.renewal_quote_id
            made = make_renewal_quote(s, sub)
            quote = made.quote
            s.flush()
            sub.renewal_quote_id = quote.id
            audit.append(s, event_key=f"subscription-{sub.id}-term-{sub.term_number}-quote",
                         actor=WHO, action="subscription.renewal_quoted",
                         entity=entity("subscription", sub.id),
                         data={"quote": quote.id, "net": quote.net_amount,
                               "list": quote.list_amount, "uplift_pct": sub.uplift_pct,
                               "pricing": sub.renewal_pricing, "status": quote.status,
                               "catalog_version": quote.catalog_version,
                               "carried": list(made.carried)})
            audit.append(s, event_key=f"quote-{quote.id}-created", actor=WHO,
                         action="quote.created", entity=entity("quote", quote.id),
                         data={"renewal_of": sub.id, "deal_id": quote.deal_id,
                               "status": quote.status})
            s.commit()
            return quote.id

    @activity.defn(name="close_term")
    def close_term(self, inp: TermInput) -> Closed:
        """End the term: renewed (its renewal quote was won), churned (cancelled, or the
        action is cancel) or auto-renewed (uplifted); the next term's row. Once per term."""
        today = dt.date.fromisoformat(inp.today)
        with self._sessions() as s:
            write_lock(s)
            sub = self._sub(s, inp.subscription_id)
            term = s.scalar(select(SubscriptionTerm).where(
                SubscriptionTerm.subscription_id == sub.id,
                SubscriptionTerm.number == inp.term_number))
            assert term is not None
            if term.outcome is not None:  # a retry: it closed already
                s.commit()
                return Closed(term.outcome, None if term.outcome == "churned"
                              else inp.term_number + 1)
            renewal = s.get(Quote, sub.renewal_quote_id) if sub.renewal_quote_id else None
            start = min(renews_on(sub), today)  # renewed early: the next term starts today
            if renewal is not None and renewal.status == "won":
                outcome, months, arr = "renewed", renewal.term_months, annual(
                    renewal.net_amount, renewal.term_months)
                sub.quote_id = renewal.id
            elif sub.status == "cancelling" or sub.term_end_action == "cancel":
                outcome, months, arr = "churned", 0, sub.arr
            else:
                months = (EVERGREEN_MONTHS if sub.term_end_action == "evergreen"
                          else sub.term_months)
                outcome, arr = "auto_renewed", uplifted(sub.arr, sub.uplift_pct)
            term.outcome, term.closed_at = outcome, dt.datetime.now(dt.UTC)
            term.end = min(term.end, start - dt.timedelta(days=1)) if outcome != "churned" \
                else term.end
            next_term = None
            if outcome == "churned":
                sub.status = "churned"
            else:
                next_term = sub.term_number + 1
                sub.term_number, sub.term_start = next_term, start
                sub.term_months, sub.arr = months, arr
                sub.term_end = term_end(start, months)
                sub.status, sub.renewal_quote_id = "active", None
                s.add(SubscriptionTerm(subscription_id=sub.id, number=next_term, start=start,
                                       end=sub.term_end, quote_id=sub.quote_id, arr=arr))
            sub.updated_at = dt.datetime.now(dt.UTC)
            audit.append(s, event_key=f"subscription-{sub.id}-term-{inp.term_number}-closed",
                         actor=WHO, action=f"subscription.{outcome}",
                         entity=entity("subscription", sub.id),
                         data={"term": inp.term_number, "arr": arr, "next_term": next_term,
                               "next_start": None if next_term is None else start.isoformat(),
                               "next_end": None if next_term is None
                               else sub.term_end.isoformat()})
            s.commit()
            return Closed(outcome, next_term)

    @activity.defn(name="change_subscription_term")
    def change_subscription_term(self, inp: ChangeInput) -> TermPlan:
        c = inp.change
        with self._sessions() as s:
            write_lock(s)
            sub = self._sub(s, inp.subscription_id)
            _current(sub, inp.term_number)
            end = sub.term_end
            if c.term_end is not None:
                try:
                    end = dt.date.fromisoformat(c.term_end)
                except ValueError:
                    raise _invalid(f"term_end {c.term_end!r} is not a date "
                                   "(YYYY-MM-DD)") from None
                if end <= sub.term_start:
                    raise _invalid(f"term_end {end} is not after the term's start "
                                   f"{sub.term_start}: terms can't overlap or be empty")
            notice = sub.notice_days if c.notice_days is None else c.notice_days
            if not 0 <= notice <= 365:
                raise _invalid(f"notice_days must be 0-365, not {notice}")
            if notice >= (end - sub.term_start).days + 1:
                raise _invalid(f"a notice period of {notice} days is longer than the term "
                               f"({sub.term_start} to {end})")
            action = c.term_end_action or sub.term_end_action
            if action not in TERM_END_ACTIONS:
                raise _invalid(f"term_end_action must be one of {', '.join(TERM_END_ACTIONS)}")
            uplift = sub.uplift_pct if c.uplift_pct is None else c.uplift_pct
            try:
                if not 0 <= Decimal(uplift) <= 100:
                    raise InvalidOperation
            except InvalidOperation:
                raise _invalid(f"uplift_pct must be a number from 0 to 100, not "
                               f"{uplift!r}") from None
            pricing = c.renewal_pricing or sub.renewal_pricing
            if pricing not in RENEWAL_METHODS:
                raise _invalid(f"renewal_pricing must be one of {', '.join(RENEWAL_METHODS)}")
            before = {"term_end": sub.term_end.isoformat(), "notice_days": sub.notice_days,
                      "term_end_action": sub.term_end_action, "uplift_pct": sub.uplift_pct,
                      "renewal_pricing": sub.renewal_pricing}
            sub.term_end, sub.notice_days, sub.term_end_action, sub.uplift_pct = (
                end, notice, action, format(Decimal(uplift).normalize(), "f"))
            sub.renewal_pricing = pricing
            term = s.scalar(select(SubscriptionTerm).where(
                SubscriptionTerm.subscription_id == sub.id,
                SubscriptionTerm.number == sub.term_number))
            if term is not None:
                term.end = end
            info = activity.info()
            audit.append(s, event_key=f"subscription-{sub.id}-change-{info.workflow_run_id}-"
                                      f"{info.activity_id}",
                         actor=_by(s, c.by_user_id),
                         action="subscription.term_changed",
                         entity=entity("subscription", sub.id),
                         data={"before": before, "after": {
                             "term_end": end.isoformat(), "notice_days": notice,
                             "term_end_action": action, "uplift_pct": sub.uplift_pct,
                             "renewal_pricing": pricing}})
            plan = self._plan(sub)
            s.commit()
            return plan

    @activity.defn(name="cancel_subscription")
    def cancel_subscription(self, inp: CancelInput) -> TermPlan:
        with self._sessions() as s:
            write_lock(s)
            sub = self._sub(s, inp.subscription_id)
            _current(sub, inp.term_number)
            if sub.status == "active":
                sub.status, sub.cancel_reason = "cancelling", inp.cancel.reason
                sub.updated_at = dt.datetime.now(dt.UTC)
                audit.append(s, event_key=f"subscription-{sub.id}-term-{sub.term_number}-"
                                          "cancelled",
                             actor=_by(s, inp.cancel.by_user_id), action="subscription.cancelled",
                             entity=entity("subscription", sub.id),
                             data={"reason": inp.cancel.reason,
                                   "ends_on": sub.term_end.isoformat()})
            plan = self._plan(sub)
            s.commit()
            return plan

    @activity.defn(name="add_subscription_addon")
    def add_subscription_addon(self, inp: AddOnInput) -> TermPlan:
        """The add-on, co-terminated: ARR grows by ``arr_delta``; its first charge is the
        delta prorated over the days left in the term. Once per key."""
        a, today = inp.add_on, dt.date.fromisoformat(inp.today)
        with self._sessions() as s:
            write_lock(s)
            sub = self._sub(s, inp.subscription_id)
            _current(sub, inp.term_number)
            key = f"subscription-{sub.id}-addon-{a.key}"
            if s.scalar(select(SubscriptionAddOn.id).where(SubscriptionAddOn.idem_key == key)):
                plan = self._plan(sub)
                s.commit()
                return plan
            if a.arr_delta <= 0:
                raise _invalid("arr_delta must be a positive amount")
            start = max(today, sub.term_start)
            days_left = max((sub.term_end - start).days + 1, 0)
            prorated = a.arr_delta * days_left // 365
            s.add(SubscriptionAddOn(subscription_id=sub.id, term_number=sub.term_number,
                                    description=a.description, arr_delta=a.arr_delta,
                                    prorated=prorated, starts_on=start, idem_key=key,
                                    created_by_id=a.by_user_id or None))
            sub.arr += a.arr_delta
            sub.updated_at = dt.datetime.now(dt.UTC)
            audit.append(s, event_key=key, actor=_by(s, a.by_user_id),
                         action="subscription.add_on", entity=entity("subscription", sub.id),
                         data={"description": a.description, "arr_delta": a.arr_delta,
                               "prorated": prorated, "co_terminates": sub.term_end.isoformat()})
            plan = self._plan(sub)
            s.commit()
            return plan


def _current(sub: Subscription, term_number: int) -> None:
    if sub.status == "churned":
        raise ApplicationError(f"subscription {sub.id} has churned", type=ENDED,
                               non_retryable=True)
    if sub.term_number != term_number:
        raise ApplicationError(f"term {term_number} of subscription {sub.id} has closed",
                               type=ENDED, non_retryable=True)


def _by(s: Session, user_id: int) -> Who:
    """The person whose request the Update carried (the web tier authorised it)."""
    user = s.get(User, user_id)
    return Who.user(user) if user is not None else WHO
