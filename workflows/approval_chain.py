"""ApprovalChainWorkflow: one run per quote version (workflow id ``quote-{id}-v{n}``).

The policy and quote facts arrive in the input, so a chain keeps the policy version it
started with. Steps run in sequence; a step's groups run in parallel; each group has seats
(one per approver target) and is satisfied by all, any, or K of them. Decisions, claims,
delegation and recall are Updates whose validators refuse what is not allowed, so the
caller gets a clear refusal and nothing enters history. Every change is projected to the
store (with its audit rows) by one projector task, in order; an Update returns as soon as
its decision is durable in history, and the store follows within milliseconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

# Pure modules, passed through the sandbox so their dataclasses (and the datetime class
# their fields use) are the ones the payload converter knows.
with workflow.unsafe.imports_passed_through():
    from workflows import rules
    from workflows.messages import (
        Actor,
        AuditRecord,
        ChainInput,
        ChainResult,
        ChainSnapshot,
        ClaimInput,
        DecisionInput,
        DelegateInput,
        EscalationInput,
        Notice,
        RecallInput,
        ResolveSeatsInput,
        Seat,
        StepSpec,
        StepState,
        TaskResult,
        TaskState,
    )

# Activity names (the implementations live in activities/, which workflows never import).
PROJECT_CHAIN = "project_chain"
RESOLVE_SEATS = "resolve_seats"
RESOLVE_ESCALATIONS = "resolve_escalations"
NOTIFY = "notify"

# Refusal types the web tier maps to HTTP statuses.
UNKNOWN_TASK = "UnknownTask"  # 404
NOT_ALLOWED = "NotAllowed"  # 403
TASK_CLOSED = "TaskClosed"  # 409
STALE_VERSION = "StaleVersion"  # 409
CHAIN_CLOSED = "ChainClosed"  # 409
COMMENT_REQUIRED = "CommentRequired"  # 422

DECIDED_STATE = {
    "approve": "approved", "reject": "rejected", "request_changes": "changes_requested",
}
RUNNING = "running"

_ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                              maximum_interval=timedelta(seconds=10))
# Store writes take milliseconds and mail a few seconds: an attempt lost with a dead worker is
# retried after these, so the chain (and a click waiting on it) stalls for seconds at most.
_QUICK = timedelta(seconds=10)
_MAIL = timedelta(seconds=30)


def _refuse(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


def _actor_label(actor: Actor) -> str:
    return f"{actor.name} (user {actor.user_id})"


# What the chain does on its own (step opened, reminded, chain ended) is recorded as this
# process; what a person does, as that person (AuditRecord's structured actor).
PROCESS = "workflow:approval_chain"


@workflow.defn
class ApprovalChainWorkflow:
    @workflow.init
    def __init__(self, inp: ChainInput) -> None:
        self._in = inp
        self._status = RUNNING
        self._revision = 0
        self._dirty = False
        self._writing = False
        self._event_seq = 0
        self._events: list[AuditRecord] = []
        self._tasks: dict[str, TaskState] = {}
        self._specs: dict[str, StepSpec] = {s.key: s for s in inp.policy.steps}
        self._steps: list[StepState] = []
        self._completed_at: datetime | None = None
        for position, planned in enumerate(rules.plan_chain(inp.policy, inp.facts)):
            step = StepState(planned.spec.key, planned.spec.name, position, planned.rule_ids,
                             planned.reasons, planned.fingerprint)
            prior = rules.carried_approval(planned, inp.prior_approvals)
            if prior is not None:
                step.state = "carried_over"
                step.carried_from = prior
            self._steps.append(step)

    # ---------------------------------------------------------------- main line
    @workflow.run
    async def run(self, inp: ChainInput) -> ChainResult:
        self._record(inp.submitted_by, "chain.started", {
            "quote_version": inp.facts.version,
            "policy": f"{inp.policy.name} v{inp.policy.version}",
            "steps": [s.key for s in self._steps],
            "carried_over": [s.key for s in self._steps if s.state == "carried_over"],
        })
        # asyncio tasks are deterministic inside a workflow (Temporal runs the event loop).
        self._projector_task = asyncio.create_task(self._projector())
        await self._flush()
        try:
            for step in self._steps:
                if self._status != RUNNING:
                    break
                if step.state == "carried_over":
                    continue
                await self._run_step(step)
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        if self._status == RUNNING:
            self._status = "approved"
        self._completed_at = workflow.now()
        for step in self._steps:
            if step.state in ("pending", "open"):
                step.state = "cancelled"
        self._record(None, f"chain.{self._status}", {"quote_version": inp.facts.version})
        await self._flush()
        await self._notify([Notice(
            key=f"{workflow.info().workflow_id}:outcome",
            subject=f"Quote {inp.facts.title}: {self._status.replace('_', ' ')}",
            body=f"The approval chain for {inp.facts.title} (v{inp.facts.version}) ended: "
                 f"{self._status.replace('_', ' ')}.",
            user_ids=sorted({inp.submitted_by.user_id, inp.facts.owner_id}),
            link=f"/quotes/{inp.facts.quote_id}",
        )])
        # Let in-flight Updates finish (and return their results) before completing; project
        # again only if one changed something (an idle re-projection is a billed activity).
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._dirty or self._events or not workflow.patched("no-idle-flush"):
            await self._flush()
        else:
            await workflow.wait_condition(lambda: not self._writing)
        return ChainResult(self._status, self._steps)

    async def _cancelled(self) -> None:
        """The chain was cancelled (its deal was lost): close its open steps and tasks and let
        the store know before ending as cancelled."""
        if self._status == RUNNING:
            for step in self._steps:
                if step.state == "open":
                    self._close_step(step, "cancelled")
            self._end_chain("cancelled")
            self._record(None, "chain.cancelled", {"quote_version": self._in.facts.version})
        self._completed_at = workflow.now()
        await self._flush()

    async def _run_step(self, step: StepState) -> None:
        spec = self._specs[step.key]
        now = workflow.now()
        remind_at, escalate_at = rules.sla_deadlines(now, spec.remind_after_s,
                                                      spec.escalate_after_s)
        step.state, step.opened_at, step.due_at = "open", now, escalate_at or remind_at
        new_tasks: list[TaskState] = []
        for g, group in enumerate(spec.groups):
            seats = await workflow.execute_activity(
                RESOLVE_SEATS, ResolveSeatsInput(group.targets, now, *self._own_deal()),
                result_type=list[Seat],
                start_to_close_timeout=_QUICK, retry_policy=_ACTIVITY_RETRY)
            for s, seat in enumerate(seats):
                task = TaskState(
                    id=f"{workflow.info().workflow_id}.{step.key}.{g}.{s}", step_key=step.key,
                    group_index=g, seat=s, queue_role=seat.queue_role,
                    assignee_id=seat.assignee_id, assignee_name=seat.assignee_name,
                    on_behalf_of_id=seat.on_behalf_of_id,
                    on_behalf_of_name=seat.on_behalf_of_name, created_at=now,
                    due_at=step.due_at)
                self._tasks[task.id] = task
                new_tasks.append(task)
        self._record(None, "step.opened", {
            "step": step.key, "reasons": step.reasons,
            "tasks": [{"id": t.id, "to": t.assignee_name,
                       "on_behalf_of": t.on_behalf_of_name or None} for t in new_tasks]})
        await self._flush()
        await self._notify([self._assignment_notice(t, "assigned") for t in new_tasks])

        reminded = escalated = False
        while step.state == "open" and self._status == RUNNING:
            deadline = None
            if remind_at and not reminded:
                deadline = remind_at
            elif escalate_at and not escalated:
                deadline = escalate_at
            try:
                timeout = None if deadline is None else max(
                    (deadline - workflow.now()).total_seconds(), 0.001)
                await workflow.wait_condition(
                    lambda: step.state != "open" or self._status != RUNNING, timeout=timeout)
            except TimeoutError:
                if deadline is remind_at and not reminded:
                    reminded = True
                    await self._remind(step)
                else:
                    escalated = True
                    await self._escalate(step)

    async def _remind(self, step: StepState) -> None:
        open_tasks = self._open_tasks(step.key)
        for t in open_tasks:
            t.reminded_at = workflow.now()
        self._record(None, "step.reminded", {"step": step.key,
                                             "tasks": [t.id for t in open_tasks]})
        await self._flush()
        await self._notify([self._assignment_notice(t, "reminder") for t in open_tasks])

    async def _escalate(self, step: StepState) -> None:
        originals = [t for t in self._open_tasks(step.key) if t.escalated_from is None]
        if not originals:
            return
        seats = await workflow.execute_activity(
            RESOLVE_ESCALATIONS, EscalationInput(originals, self._in.policy.escalation_role,
                                                 *self._own_deal()),
            result_type=list[Seat], start_to_close_timeout=_QUICK,
            retry_policy=_ACTIVITY_RETRY)
        added = []
        for original, seat in zip(originals, seats, strict=True):
            task = TaskState(
                id=f"{original.id}.esc", step_key=step.key, group_index=original.group_index,
                seat=original.seat, queue_role=seat.queue_role, assignee_id=seat.assignee_id,
                assignee_name=seat.assignee_name, on_behalf_of_id=seat.on_behalf_of_id,
                on_behalf_of_name=seat.on_behalf_of_name, created_at=workflow.now(),
                due_at=original.due_at, escalated_from=original.id)
            self._tasks[task.id] = task
            added.append(task)
        self._record(None, "step.escalated", {
            "step": step.key,
            "tasks": [{"id": t.id, "from": t.escalated_from, "to": t.assignee_name}
                      for t in added]})
        await self._flush()
        await self._notify([self._assignment_notice(t, "escalated") for t in added])

    # ---------------------------------------------------------------- updates
    @workflow.update
    async def decide(self, inp: DecisionInput) -> TaskResult:
        task = self._tasks[inp.task_id]
        self._check_open(task)  # a concurrent Update may have decided it since validation
        now = workflow.now()
        task.state = DECIDED_STATE[inp.decision]
        task.decided_by_id, task.decided_by_name = inp.actor.user_id, inp.actor.name
        task.decided_at, task.comment = now, inp.comment.strip()
        if task.queue_role and task.assignee_id is None:
            task.claimed_by_id, task.claimed_by_name = inp.actor.user_id, inp.actor.name
        for other in self._tasks.values():
            if (other.state == "open" and other.step_key == task.step_key
                    and other.group_index == task.group_index and other.seat == task.seat):
                other.state = "superseded"
        step = self._step(task.step_key)
        if inp.decision == "approve":
            if self._step_satisfied(step.key):
                self._close_step(step, "approved")
        else:
            self._close_step(step, task.state)
            self._end_chain(task.state)
        self._record(inp.actor, f"task.{task.state}", {
            "task": task.id, "step": task.step_key, "comment": task.comment,
            "on_behalf_of": task.on_behalf_of_name or None,
            "quote_version": self._in.facts.version})
        self._dirty = True
        return self._result(task)

    @decide.validator
    def _validate_decide(self, inp: DecisionInput) -> None:
        task = self._task_for(inp.task_id)
        if inp.decision not in DECIDED_STATE:
            raise _refuse(f"unknown decision {inp.decision!r}", COMMENT_REQUIRED)
        if inp.decision != "approve" and not inp.comment.strip():
            word = "rejecting" if inp.decision == "reject" else "requesting changes"
            raise _refuse(f"a comment is required when {word}", COMMENT_REQUIRED)
        if inp.quote_version is not None and inp.quote_version != self._in.facts.version:
            raise _refuse(
                f"this task is for quote version {self._in.facts.version}, "
                f"not {inp.quote_version}; reload the quote", STALE_VERSION)
        self._check_open(task)
        self._check_may_act(task, inp.actor)
        if inp.actor.user_id == self._in.submitted_by.user_id:
            raise _refuse("you submitted this quote, so you cannot approve it", NOT_ALLOWED)
        # Anyone in a queue may decide its tasks unclaimed: the same rule as claiming them.
        why = (self._why_cannot_decide(task, inp.actor.user_id, inp.actor.roles)
               if task.assignee_id is None else None)
        if why:
            raise _refuse(f"you cannot decide this task: {inp.actor.name} {why}", NOT_ALLOWED)

    @workflow.update
    async def claim(self, inp: ClaimInput) -> TaskResult:
        task = self._tasks[inp.task_id]
        self._check_open(task)
        if inp.claim:
            task.claimed_by_id, task.claimed_by_name = inp.actor.user_id, inp.actor.name
        else:
            task.claimed_by_id, task.claimed_by_name = None, ""
        self._record(inp.actor, "task.claimed" if inp.claim else "task.unclaimed",
                     {"task": task.id})
        self._dirty = True
        return self._result(task)

    @claim.validator
    def _validate_claim(self, inp: ClaimInput) -> None:
        task = self._task_for(inp.task_id)
        self._check_open(task)
        if task.queue_role is None or task.assignee_id is not None:
            raise _refuse("only role-queue tasks can be claimed", NOT_ALLOWED)
        self._check_may_act(task, inp.actor)
        if not inp.claim:
            if task.claimed_by_id != inp.actor.user_id:
                raise _refuse("you have not claimed this task", NOT_ALLOWED)
            return  # letting go is always allowed
        why = self._why_cannot_decide(task, inp.actor.user_id, inp.actor.roles)
        if why:
            raise _refuse(f"you cannot claim this task: {inp.actor.name} {why}", NOT_ALLOWED)

    @workflow.update
    async def delegate(self, inp: DelegateInput) -> TaskResult:
        task = self._tasks[inp.task_id]
        self._check_open(task)
        previous = task.assignee_name or inp.actor.name
        previous_id = task.assignee_id or inp.actor.user_id
        task.assignee_id, task.assignee_name = inp.to_user_id, inp.to_user_name
        task.on_behalf_of_id, task.on_behalf_of_name = previous_id, previous
        task.claimed_by_id, task.claimed_by_name = None, ""
        self._record(inp.actor, "task.delegated", {
            "task": task.id, "to": inp.to_user_name, "to_user_id": inp.to_user_id,
            "comment": inp.comment})
        self._dirty = True
        await self._notify([self._assignment_notice(task, f"delegated-{inp.to_user_id}")])
        return self._result(task)

    @delegate.validator
    def _validate_delegate(self, inp: DelegateInput) -> None:
        task = self._task_for(inp.task_id)
        self._check_open(task)
        self._check_may_act(task, inp.actor)
        if inp.to_user_id == inp.actor.user_id:
            raise _refuse("choose someone other than yourself", NOT_ALLOWED)
        why = self._why_cannot_decide(task, inp.to_user_id, inp.to_user_roles)
        if why:
            raise _refuse(f"the task cannot be delegated to {inp.to_user_name}: "
                          f"{inp.to_user_name} {why}", NOT_ALLOWED)

    @workflow.update
    async def recall(self, inp: RecallInput) -> str:
        if self._status != RUNNING:
            raise _refuse(f"the chain has already ended ({self._status})", CHAIN_CLOSED)
        for step in self._steps:
            if step.state == "open":
                self._close_step(step, "cancelled")
        self._end_chain("recalled")
        self._record(inp.actor, "chain.recalled", {"comment": inp.comment})
        self._dirty = True
        return self._status

    @recall.validator
    def _validate_recall(self, inp: RecallInput) -> None:
        if inp.actor.user_id not in (self._in.submitted_by.user_id, self._in.facts.owner_id):
            raise _refuse("only the quote's owner or submitter can recall it", NOT_ALLOWED)
        if self._status != RUNNING:
            raise _refuse(f"the chain has already ended ({self._status})", CHAIN_CLOSED)

    @workflow.query
    def snapshot(self) -> ChainSnapshot:
        return self._snapshot([])

    # ---------------------------------------------------------------- helpers
    def _task_for(self, task_id: str) -> TaskState:
        task = self._tasks.get(task_id)
        if task is None:
            raise _refuse(f"no task {task_id!r} in this chain", UNKNOWN_TASK)
        return task

    def _check_open(self, task: TaskState) -> None:
        if task.state == "open" and self._status == RUNNING:
            return
        if task.decided_by_name:
            raise _refuse(f"already {task.state.replace('_', ' ')} by {task.decided_by_name}",
                          TASK_CLOSED)
        if self._status != RUNNING:
            raise _refuse(f"the approval chain has ended ({self._status.replace('_', ' ')})",
                          TASK_CLOSED)
        raise _refuse(f"this task is no longer open ({task.state})", TASK_CLOSED)

    def _check_may_act(self, task: TaskState, actor: Actor) -> None:
        if task.assignee_id is not None:
            if actor.user_id != task.assignee_id:
                raise _refuse(f"this task is assigned to {task.assignee_name}", NOT_ALLOWED)
            return
        if task.queue_role not in actor.roles:
            raise _refuse(f"this task is in the {task.queue_role} queue, which you are not in",
                          NOT_ALLOWED)
        if task.claimed_by_id not in (None, actor.user_id):
            raise _refuse(f"claimed by {task.claimed_by_name}", NOT_ALLOWED)

    def _why_cannot_decide(self, task: TaskState, user_id: int, roles: list[str]) -> str | None:
        """``rules.why_cannot_decide`` for this task: a queue task needs that queue's role
        (a task delegated to someone is theirs, whatever its queue was)."""
        return rules.why_cannot_decide(
            user_id=user_id, roles=roles,
            queue_role=task.queue_role if task.assignee_id is None else None,
            submitter_id=self._in.submitted_by.user_id, owner_id=self._in.facts.owner_id)

    def _own_deal(self) -> tuple[int, int]:
        """The submitter and the quote's owner: never the delegate of anyone's seat here."""
        return self._in.submitted_by.user_id, self._in.facts.owner_id

    def _result(self, task: TaskState) -> TaskResult:
        own = self._step(task.step_key)
        return TaskResult(task, self._status, step_open=own.state == "open",
                          steps_left=[s.name for s in self._steps if s is not own
                                      and s.state in ("pending", "open")])

    def _step(self, key: str) -> StepState:
        return next(s for s in self._steps if s.key == key)

    def _open_tasks(self, step_key: str) -> list[TaskState]:
        return [t for t in self._tasks.values() if t.step_key == step_key and t.state == "open"]

    def _step_satisfied(self, key: str) -> bool:
        for g, group in enumerate(self._specs[key].groups):
            approved = {t.seat for t in self._tasks.values()
                        if t.step_key == key and t.group_index == g and t.state == "approved"}
            if not rules.group_satisfied(group, len(approved)):
                return False
        return True

    def _close_step(self, step: StepState, state: str) -> None:
        step.state = state
        step.completed_at = workflow.now()
        for t in self._open_tasks(step.key):
            t.state = "skipped" if state == "approved" else "cancelled"

    def _end_chain(self, status: str) -> None:
        # Cancel the steps that will never open here, not only when run() wakes up, so the
        # projection written by this Update already shows them cancelled.
        self._status = status
        for step in self._steps:
            if step.state == "pending":
                step.state = "cancelled"

    def _record(self, actor: Actor | None, action: str, data: dict[str, object]) -> None:
        """An audit row for the projection to write: by ``actor``, or (None) by the chain."""
        self._event_seq += 1
        key = f"{workflow.info().workflow_id}#{self._event_seq}"
        if actor is None:
            record = AuditRecord(key, workflow.now(), "system", action, data,
                                 actor_kind="system", actor_process=PROCESS)
        else:
            record = AuditRecord(key, workflow.now(), _actor_label(actor), action, data,
                                 actor_kind="user", actor_user_id=actor.user_id,
                                 actor_name=actor.name)
        self._events.append(record)

    def _snapshot(self, events: list[AuditRecord]) -> ChainSnapshot:
        return ChainSnapshot(
            workflow_id=workflow.info().workflow_id, facts=self._in.facts,
            policy_name=self._in.policy.name, policy_version=self._in.policy.version,
            submitted_by=self._in.submitted_by, status=self._status, revision=self._revision,
            steps=[dataclasses.replace(s) for s in self._steps],
            tasks=[dataclasses.replace(t) for t in self._tasks.values()], events=events,
            completed_at=self._completed_at)

    async def _projector(self) -> None:
        """The one writer of this chain's projection: whenever the state changed, send a
        snapshot (with the audit rows recorded since the last one) to the store.

        Updates only mark the state dirty and return, so an approver's click costs one
        Update round-trip; the store follows a moment later, in order, one write at a time.
        """
        while True:
            await workflow.wait_condition(lambda: self._dirty)
            self._dirty = False
            self._revision += 1
            snap = self._snapshot(self._events)
            self._events = []
            self._writing = True
            try:
                await workflow.execute_activity(
                    PROJECT_CHAIN, snap, start_to_close_timeout=_QUICK,
                    retry_policy=_ACTIVITY_RETRY)
            finally:
                self._writing = False

    async def _flush(self) -> None:
        """Project now and wait until the store has it (the main line's ordering points)."""
        self._dirty = True
        await workflow.wait_condition(lambda: not self._dirty and not self._writing)

    def _assignment_notice(self, task: TaskState, kind: str) -> Notice:
        f = self._in.facts
        what = {"assigned": "needs your approval", "reminder": "is still waiting for you",
                "escalated": "was escalated to you"}.get(kind, "was delegated to you")
        return Notice(
            key=f"{task.id}:{kind}",
            subject=f"[dealdesk] {f.title} {what}",
            body=(f"{f.account_name} — {f.title} (v{f.version}), "
                  f"{f.total / 100:,.2f} {f.currency}, discount {f.discount_pct:g}%.\n"
                  f"Step: {self._step(task.step_key).name}."
                  + (f"\nOn behalf of {task.on_behalf_of_name}." if task.on_behalf_of_name
                     else "")),
            user_ids=[task.assignee_id] if task.assignee_id is not None else [],
            roles=[task.queue_role] if task.assignee_id is None and task.queue_role else [],
            link=f"/tasks/{task.id}")

    async def _notify(self, notices: list[Notice]) -> None:
        if notices:
            await workflow.execute_activity(
                NOTIFY, notices, start_to_close_timeout=_MAIL,
                retry_policy=_ACTIVITY_RETRY)

