"""RenewalWorkflow: one per subscription (``renewal-{subscription id}``), one run per term.

A run watches its term: it reminds the owner at each offset before the renewal date (120, 90,
60 and 30 days by default), makes the renewal quote at its offset (90 days) and moves it on
(submitted through the approval chain when it carries a discount, else sent for signature to
the customer's signer of the contract it renews), and on the
renewal date closes the term (``close_term``): renewed when the renewal quote was won,
churned when the subscription was cancelled or ends by its action, else auto-renewed with the
uplift. Then it continues as new for the next term, once every Update handler has finished,
so no run's history grows with the subscription's age.

Updates (validated first, applied by an activity that checks them against the store):
``change_term``, ``cancel``, ``renew_early``, ``add_on``; each returns the
:class:`RenewalState` the ``state`` query gives. Reminder offsets already past when a term
starts (or is changed) are skipped but for the latest, which is sent at once; the renewal
quote, if its offset is past, is made at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.renewal_messages import (
        ENDED,
        INVALID,
        AddOn,
        AddOnInput,
        Cancel,
        CancelInput,
        ChangeInput,
        ChangeTerm,
        Closed,
        RemindInput,
        RenewalInput,
        RenewalState,
        RenewEarly,
        TermInput,
        TermPlan,
    )

ADVANCE_RENEWAL_QUOTE = "advance_renewal_quote"
"""Submit the renewal quote, or send it for signature (``dealdesk/renewal_steps.py``)."""
_STORE = timedelta(seconds=15)
_ADVANCE = timedelta(minutes=5)  # sending renders the contract and converts it to PDF
_MAIL = timedelta(seconds=30)
_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                     maximum_interval=timedelta(seconds=10))


def _at(day: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), dt.UTC)


@workflow.defn
class RenewalWorkflow:
    def __init__(self) -> None:
        self._plan: TermPlan | None = None
        self._sent: list[int] = []
        self._renew_now = False
        self._changed = False
        self._closing = False

    # -- the term ----------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: RenewalInput) -> str:
        self._plan = await self._store("renewal_plan", TermInput(inp.subscription_id,
                                                                  inp.term_number), TermPlan)
        if self._plan.status == "churned":
            return "churned"
        if self._plan.term_number != inp.term_number:  # closed before a crash: go on
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(RenewalInput(inp.subscription_id,
                                                  self._plan.term_number))
        await self._watch(inp)
        self._closing = True
        closed: Closed = await self._store("close_term", TermInput(
            inp.subscription_id, inp.term_number, self._today()), Closed)
        await workflow.wait_condition(workflow.all_handlers_finished)
        if closed.next_term is None:
            return closed.outcome
        workflow.continue_as_new(RenewalInput(inp.subscription_id, closed.next_term))

    async def _watch(self, inp: RenewalInput) -> None:
        """Reminders and the renewal quote, each at its time, until the renewal date (or a
        renew-early). A changed term end re-plans the times."""
        assert self._plan is not None
        # An evergreen term is a month: it rolls over without a renewal quote.
        quote_made = (self._plan.renewal_quote_id is not None
                      or self._plan.term_end_action == "evergreen")
        skipped = self._past_reminders()
        while not self._renew_now:
            plan = self._plan
            assert plan is not None
            renewal = _at(plan.renews_on)
            now = workflow.now()
            due = [(renewal - timedelta(days=d), "remind", d) for d in plan.reminder_days
                   if d not in self._sent and d not in skipped]
            if not quote_made:
                due.append((max(now, renewal - timedelta(days=plan.quote_days)), "quote",
                            plan.quote_days))
            due.append((renewal, "renew", 0))
            when, what, days = min(due)
            self._changed = False
            if when > now:
                try:
                    await workflow.wait_condition(lambda: self._changed or self._renew_now,
                                                  timeout=when - now)
                    skipped = self._past_reminders()  # a changed term: plan again
                    continue
                except TimeoutError:
                    pass
            if what == "renew":
                return
            if what == "quote":
                quote_id: int = await self._store(
                    "make_renewal_quote", TermInput(inp.subscription_id, inp.term_number,
                                                    self._today()), int)
                self._plan = _with_quote(plan, quote_id)
                quote_made = True
                if workflow.patched("renewal-steps"):
                    await workflow.execute_activity(
                        ADVANCE_RENEWAL_QUOTE, quote_id, result_type=str,
                        start_to_close_timeout=_ADVANCE, retry_policy=_RETRY)
            else:
                await workflow.execute_activity(
                    "remind_renewal", RemindInput(inp.subscription_id, inp.term_number, days),
                    start_to_close_timeout=_MAIL, retry_policy=_RETRY)
                self._sent.append(days)

    def _past_reminders(self) -> set[int]:
        """The offsets whose time had passed, unsent, when the term (or its change) began:
        they are skipped, except the latest of them, which is sent at once (a subscription
        won or moved to renew in 20 days reminds its owner now, not never). An evergreen
        month skips them all: it would remind every month."""
        assert self._plan is not None
        renewal = _at(self._plan.renews_on)
        past = {d for d in self._plan.reminder_days if d not in self._sent
                and renewal - timedelta(days=d) <= workflow.now()}
        if past and self._plan.term_end_action != "evergreen" \
                and workflow.patched("remind-latest-missed"):
            past.discard(min(past))
        return past

    def _today(self) -> str:
        return workflow.now().date().isoformat()

    async def _store(self, name: str, arg: object, result: type[Any]) -> Any:
        return await workflow.execute_activity(name, arg, result_type=result,
                                               start_to_close_timeout=_STORE,
                                               retry_policy=_RETRY)

    # -- queries and updates -------------------------------------------------------------
    @workflow.query
    def state(self) -> RenewalState:
        plan = self._plan
        if plan is None:
            return RenewalState(0, 0, "starting", "", None, None, [])
        renewal = _at(plan.renews_on)
        left = [d for d in plan.reminder_days if d not in self._sent
                and renewal - timedelta(days=d) > workflow.now()]
        next_on = (renewal - timedelta(days=max(left))).date().isoformat() if left else None
        return RenewalState(plan.subscription_id, plan.term_number, plan.status,
                            plan.renews_on, next_on, plan.renewal_quote_id, list(self._sent))

    def _open(self) -> None:
        """Refuse a change the term can't take; before the first plan is read, the handler
        waits for it (:meth:`_ready`) and asks again."""
        if self._plan is None:
            return
        if self._plan.status == "churned":
            raise ApplicationError("this subscription has churned", type=ENDED)
        if self._closing or self._renew_now:
            raise ApplicationError("the term is being renewed; try again in a moment",
                                   type=ENDED)

    async def _ready(self) -> TermPlan:
        await workflow.wait_condition(lambda: self._plan is not None)
        self._open()
        assert self._plan is not None
        return self._plan

    async def _apply(self, name: str, arg: object) -> RenewalState:
        try:
            self._plan = await self._store(name, arg, TermPlan)
        except ActivityError as e:  # the store refused it: the refusal, as the Update's
            if isinstance(e.cause, ApplicationError):
                raise ApplicationError(e.cause.message, type=e.cause.type) from None
            raise
        self._changed = True
        return self.state()

    @workflow.update
    async def change_term(self, change: ChangeTerm) -> RenewalState:
        plan = await self._ready()
        return await self._apply("change_subscription_term", ChangeInput(
            plan.subscription_id, plan.term_number, change))

    @change_term.validator
    def _check_change(self, change: ChangeTerm) -> None:
        self._open()
        if change.term_end_action not in (None, "renew", "evergreen", "cancel"):
            raise ApplicationError(f"unknown term_end_action {change.term_end_action!r}",
                                   type=INVALID)
        if change.notice_days is not None and change.notice_days < 0:
            raise ApplicationError("notice_days can't be negative", type=INVALID)

    @workflow.update
    async def cancel(self, cancel: Cancel) -> RenewalState:
        plan = await self._ready()
        return await self._apply("cancel_subscription", CancelInput(
            plan.subscription_id, plan.term_number, cancel))

    @cancel.validator
    def _check_cancel(self, cancel: Cancel) -> None:
        self._open()
        if not cancel.reason.strip():
            raise ApplicationError("say why the subscription is cancelled", type=INVALID)

    @workflow.update
    async def renew_early(self, renew: RenewEarly) -> RenewalState:
        plan = await self._ready()
        if plan.status != "active":
            raise ApplicationError("a cancelled subscription can't renew early; change its "
                                   "term-end action instead", type=INVALID)
        self._renew_now = True
        return self.state()

    @renew_early.validator
    def _check_renew_early(self, renew: RenewEarly) -> None:
        self._open()
        if self._plan is not None and self._plan.status != "active":
            raise ApplicationError("a cancelled subscription can't renew early; change its "
                                   "term-end action instead", type=INVALID)

    @workflow.update
    async def add_on(self, add_on: AddOn) -> RenewalState:
        plan = await self._ready()
        return await self._apply("add_subscription_addon", AddOnInput(
            plan.subscription_id, plan.term_number, add_on, self._today()))

    @add_on.validator
    def _check_add_on(self, add_on: AddOn) -> None:
        self._open()
        if add_on.arr_delta <= 0:
            raise ApplicationError("an add-on's arr_delta must be positive", type=INVALID)
        if not add_on.description.strip():
            raise ApplicationError("describe the add-on", type=INVALID)


def _with_quote(plan: TermPlan, quote_id: int) -> TermPlan:
    return dataclasses.replace(plan, renewal_quote_id=quote_id)
