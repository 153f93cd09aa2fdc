"""ProposalWorkflow: one run per submitted proposal version (``proposal-{id}-v{n}``).

A proposal's review goes through the approval engine: the active policy's rules about
proposals (``subject: proposal``) pick the steps from the proposal's facts (its sections
written for it, sections from library items due for review, section tags, the linked quote's
discount), and a step approved for the previous version carries over when its fingerprint
is unchanged. A section's fingerprint input is its content (``ProposalFacts.basis``), so
editing one section re-opens only the reviews whose rules read it.

Steps run in order; a step's groups in parallel, each satisfied by all, any or K seats
(queues or named people, with out-of-office delegation: the chain's ``resolve_seats``). A
step past ``remind_after`` mails its holders; past ``escalate_after`` its tasks get a sibling
for the assignee's manager or the escalation queue. Decisions and recall are Updates with
validators. Approved, the version's DOCX becomes the final PDF (``finalize_proposal``).
The store follows through one projector, like the quote chain's.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import rules
    from workflows.messages import (
        Actor,
        AuditRecord,
        DecisionInput,
        EscalationInput,
        Notice,
        PolicySpec,
        PriorApproval,
        ProposalFacts,
        RecallInput,
        ResolveSeatsInput,
        Seat,
        StepSpec,
        StepState,
        TaskResult,
        TaskState,
    )

PROJECT_PROPOSAL = "project_proposal"
FINALIZE_PROPOSAL = "finalize_proposal"
RESOLVE_SEATS = "resolve_seats"
RESOLVE_ESCALATIONS = "resolve_escalations"
NOTIFY = "notify"

# The same refusal types as the quote chain's, so the web tier maps them the same way.
UNKNOWN_TASK = "UnknownTask"
NOT_ALLOWED = "NotAllowed"
TASK_CLOSED = "TaskClosed"
STALE_VERSION = "StaleVersion"
CHAIN_CLOSED = "ChainClosed"
COMMENT_REQUIRED = "CommentRequired"

DECIDED_STATE = {
    "approve": "approved", "reject": "rejected", "request_changes": "changes_requested",
}
RUNNING = "running"
PROCESS = "workflow:proposal"

_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                     maximum_interval=timedelta(seconds=10))
_QUICK = timedelta(seconds=10)
_MAIL = timedelta(seconds=30)
_CONVERT = timedelta(minutes=15)  # heartbeats every 2 s: a dead worker shows in seconds


def workflow_id(prefix: str, proposal_id: int, version: int) -> str:
    return f"{prefix}proposal-{proposal_id}-v{version}"


@dataclass(frozen=True)
class ProposalInput:
    facts: ProposalFacts
    policy: PolicySpec
    submitted_by: Actor
    docx_sha256: str
    prior_approvals: list[PriorApproval] = field(default_factory=list)


@dataclass(frozen=True)
class ProposalSnapshot:
    workflow_id: str
    proposal_id: int
    version: int
    status: str
    revision: int
    steps: list[StepState]
    tasks: list[TaskState]
    events: list[AuditRecord]
    completed_at: datetime | None = None


@dataclass(frozen=True)
class FinalizeInput:
    proposal_id: int
    version: int
    docx_sha256: str


@dataclass(frozen=True)
class ProposalResult:
    status: str
    pdf_sha256: str | None = None


def _refuse(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn
class ProposalWorkflow:
    @workflow.init
    def __init__(self, inp: ProposalInput) -> None:
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
                step.state, step.carried_from = "carried_over", prior
            self._steps.append(step)

    @workflow.run
    async def run(self, inp: ProposalInput) -> ProposalResult:
        self._record(inp.submitted_by, "proposal.review_started", {
            "version": inp.facts.version, "docx_sha256": inp.docx_sha256,
            "policy": f"{inp.policy.name} v{inp.policy.version}",
            "steps": [s.key for s in self._steps],
            "carried_over": [s.key for s in self._steps if s.state == "carried_over"]})
        self._projector_task = asyncio.create_task(self._projector())
        await self._flush()
        try:
            for step in self._steps:
                if self._status != RUNNING:
                    break
                if step.state != "carried_over":
                    await self._run_step(step)
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        pdf = None
        if self._status == RUNNING:
            self._status = "approved"
            self._record(None, "proposal.approved", {"version": inp.facts.version})
            await self._flush()
            pdf = await workflow.execute_activity(
                FINALIZE_PROPOSAL, FinalizeInput(inp.facts.proposal_id, inp.facts.version,
                                                 inp.docx_sha256),
                result_type=str, start_to_close_timeout=_CONVERT,
                heartbeat_timeout=timedelta(seconds=10), retry_policy=_RETRY)
        self._completed_at = workflow.now()
        for step in self._steps:
            if step.state in ("pending", "open"):
                step.state = "cancelled"
        self._record(None, f"proposal.review_{self._status}", {"version": inp.facts.version})
        await self._flush()
        f = inp.facts
        await self._notify([Notice(
            key=f"{workflow.info().workflow_id}:outcome",
            subject=f"Proposal {f.title} (v{f.version}): {self._status.replace('_', ' ')}",
            body=f"The review of the proposal {f.title} for {f.account_name} (v{f.version}) "
                 f"ended: {self._status.replace('_', ' ')}."
                 + (" The final PDF is ready." if pdf else ""),
            user_ids=sorted({inp.submitted_by.user_id, f.owner_id}),
            link=f"/proposals/{f.proposal_id}")])
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush()
        return ProposalResult(self._status, pdf)

    async def _run_step(self, step: StepState) -> None:
        spec = self._specs[step.key]
        now = workflow.now()
        remind_at, escalate_at = rules.sla_deadlines(now, spec.remind_after_s,
                                                      spec.escalate_after_s)
        step.state, step.opened_at, step.due_at = "open", now, escalate_at or remind_at
        opened: list[TaskState] = []
        for g, group in enumerate(spec.groups):
            seats = await workflow.execute_activity(
                RESOLVE_SEATS, ResolveSeatsInput(group.targets, now, *self._own()),
                result_type=list[Seat], start_to_close_timeout=_QUICK, retry_policy=_RETRY)
            for s, seat in enumerate(seats):
                opened.append(self._add_task(f"{workflow.info().workflow_id}.{step.key}.{g}.{s}",
                                             step, g, s, seat))
        self._record(None, "proposal.step_opened", {
            "step": step.key, "reasons": step.reasons,
            "tasks": [{"id": t.id, "to": t.assignee_name} for t in opened]})
        await self._flush()
        await self._notify([self._notice(t, "assigned") for t in opened])
        reminded = escalated = False
        while step.state == "open" and self._status == RUNNING:
            deadline = (remind_at if remind_at and not reminded
                        else escalate_at if escalate_at and not escalated else None)
            try:
                await workflow.wait_condition(
                    lambda: step.state != "open" or self._status != RUNNING,
                    timeout=None if deadline is None
                    else max((deadline - workflow.now()).total_seconds(), 0.001))
            except TimeoutError:
                if deadline is remind_at and not reminded:
                    reminded = True
                    await self._remind(step)
                else:
                    escalated = True
                    await self._escalate(step)

    def _add_task(self, task_id: str, step: StepState, group: int, seat_no: int, seat: Seat,
                  escalated_from: str | None = None) -> TaskState:
        task = TaskState(
            id=task_id, step_key=step.key, group_index=group, seat=seat_no,
            queue_role=seat.queue_role, assignee_id=seat.assignee_id,
            assignee_name=seat.assignee_name, on_behalf_of_id=seat.on_behalf_of_id,
            on_behalf_of_name=seat.on_behalf_of_name, created_at=workflow.now(),
            due_at=step.due_at, escalated_from=escalated_from)
        self._tasks[task.id] = task
        return task

    async def _remind(self, step: StepState) -> None:
        waiting = self._open_tasks(step.key)
        for t in waiting:
            t.reminded_at = workflow.now()
        self._record(None, "proposal.step_reminded", {"step": step.key,
                                                      "tasks": [t.id for t in waiting]})
        await self._flush()
        await self._notify([self._notice(t, "reminder") for t in waiting])

    async def _escalate(self, step: StepState) -> None:
        originals = [t for t in self._open_tasks(step.key) if t.escalated_from is None]
        if not originals:
            return
        seats = await workflow.execute_activity(
            RESOLVE_ESCALATIONS, EscalationInput(originals, self._in.policy.escalation_role,
                                                 *self._own()),
            result_type=list[Seat], start_to_close_timeout=_QUICK, retry_policy=_RETRY)
        added = [self._add_task(f"{o.id}.esc", step, o.group_index, o.seat, seat, o.id)
                 for o, seat in zip(originals, seats, strict=True)]
        self._record(None, "proposal.step_escalated", {
            "step": step.key, "tasks": [{"id": t.id, "from": t.escalated_from,
                                         "to": t.assignee_name} for t in added]})
        await self._flush()
        await self._notify([self._notice(t, "escalated") for t in added])

    # ---------------------------------------------------------------- updates
    @workflow.update
    async def decide(self, inp: DecisionInput) -> TaskResult:
        task = self._tasks[inp.task_id]
        self._check_open(task)  # a concurrent Update may have decided it since validation
        task.state = DECIDED_STATE[inp.decision]
        task.decided_by_id, task.decided_by_name = inp.actor.user_id, inp.actor.name
        task.decided_at, task.comment = workflow.now(), inp.comment.strip()
        for other in self._tasks.values():
            if (other.state == "open" and other.step_key == task.step_key
                    and other.group_index == task.group_index and other.seat == task.seat):
                other.state = "superseded"
        step = next(s for s in self._steps if s.key == task.step_key)
        if inp.decision == "approve":
            if self._satisfied(step.key):
                self._close_step(step, "approved")
        else:
            self._close_step(step, task.state)
            self._end(task.state)
        self._record(inp.actor, f"proposal.task_{task.state}", {
            "task": task.id, "step": task.step_key, "comment": task.comment,
            "version": self._in.facts.version})
        self._dirty = True
        return TaskResult(task, self._status, step_open=step.state == "open",
                          steps_left=[s.name for s in self._steps if s is not step
                                      and s.state in ("pending", "open")])

    @decide.validator
    def _validate_decide(self, inp: DecisionInput) -> None:
        task = self._tasks.get(inp.task_id)
        if task is None:
            raise _refuse(f"no task {inp.task_id!r} in this review", UNKNOWN_TASK)
        if inp.decision not in DECIDED_STATE:
            raise _refuse(f"unknown decision {inp.decision!r}", COMMENT_REQUIRED)
        if inp.decision != "approve" and not inp.comment.strip():
            word = "rejecting" if inp.decision == "reject" else "requesting changes"
            raise _refuse(f"a comment is required when {word}", COMMENT_REQUIRED)
        if inp.quote_version is not None and inp.quote_version != self._in.facts.version:
            raise _refuse(f"this task is for proposal version {self._in.facts.version}, "
                          f"not {inp.quote_version}; reload the proposal", STALE_VERSION)
        self._check_open(task)
        if task.assignee_id is not None and inp.actor.user_id != task.assignee_id:
            raise _refuse(f"this task is assigned to {task.assignee_name}", NOT_ALLOWED)
        why = rules.why_cannot_decide(
            user_id=inp.actor.user_id, roles=inp.actor.roles,
            queue_role=task.queue_role if task.assignee_id is None else None,
            submitter_id=self._in.submitted_by.user_id, owner_id=self._in.facts.owner_id)
        if why:
            raise _refuse(f"you cannot decide this task: {inp.actor.name} "
                          + why.replace("quote", "proposal"), NOT_ALLOWED)

    async def _cancelled(self) -> None:
        """The review was cancelled (its deal was lost): close its open steps and tasks and
        let the store know before ending as cancelled."""
        if self._status == RUNNING:
            for step in self._steps:
                if step.state == "open":
                    self._close_step(step, "cancelled")
            self._end("cancelled")
            self._record(None, "proposal.review_cancelled", {"version": self._in.facts.version})
        self._completed_at = workflow.now()
        await self._flush()

    @workflow.update
    async def recall(self, inp: RecallInput) -> str:
        if self._status != RUNNING:
            raise _refuse(f"the review has already ended ({self._status})", CHAIN_CLOSED)
        for step in self._steps:
            if step.state == "open":
                self._close_step(step, "cancelled")
        self._end("recalled")
        self._record(inp.actor, "proposal.recalled", {"comment": inp.comment,
                                                      "version": self._in.facts.version})
        self._dirty = True
        return self._status

    @recall.validator
    def _validate_recall(self, inp: RecallInput) -> None:
        if inp.actor.user_id not in (self._in.submitted_by.user_id, self._in.facts.owner_id):
            raise _refuse("only the proposal's owner or submitter can recall it", NOT_ALLOWED)
        if self._status != RUNNING:
            raise _refuse(f"the review has already ended ({self._status.replace('_', ' ')})",
                          CHAIN_CLOSED)

    # ---------------------------------------------------------------- helpers
    def _check_open(self, task: TaskState) -> None:
        if task.state == "open" and self._status == RUNNING:
            return
        if task.decided_by_name:
            raise _refuse(f"already {task.state.replace('_', ' ')} by {task.decided_by_name}",
                          TASK_CLOSED)
        if self._status != RUNNING:
            raise _refuse(f"the review has ended ({self._status.replace('_', ' ')})",
                          TASK_CLOSED)
        raise _refuse(f"this task is no longer open ({task.state})", TASK_CLOSED)

    def _own(self) -> tuple[int, int]:
        return self._in.submitted_by.user_id, self._in.facts.owner_id

    def _open_tasks(self, step_key: str) -> list[TaskState]:
        return [t for t in self._tasks.values() if t.step_key == step_key and t.state == "open"]

    def _satisfied(self, key: str) -> bool:
        for g, group in enumerate(self._specs[key].groups):
            approved = {t.seat for t in self._tasks.values()
                        if t.step_key == key and t.group_index == g and t.state == "approved"}
            if not rules.group_satisfied(group, len(approved)):
                return False
        return True

    def _close_step(self, step: StepState, state: str) -> None:
        step.state, step.completed_at = state, workflow.now()
        for t in self._open_tasks(step.key):
            t.state = "skipped" if state == "approved" else "cancelled"

    def _end(self, status: str) -> None:
        self._status = status
        for step in self._steps:
            if step.state == "pending":
                step.state = "cancelled"

    def _record(self, actor: Actor | None, action: str, data: dict[str, object]) -> None:
        self._event_seq += 1
        key = f"{workflow.info().workflow_id}#{self._event_seq}"
        if actor is None:
            record = AuditRecord(key, workflow.now(), "system", action, data,
                                 actor_kind="system", actor_process=PROCESS)
        else:
            record = AuditRecord(key, workflow.now(), f"{actor.name} (user {actor.user_id})",
                                 action, data, actor_kind="user",
                                 actor_user_id=actor.user_id, actor_name=actor.name)
        self._events.append(record)

    async def _projector(self) -> None:
        """The one writer of this review's projection, one snapshot at a time, in order."""
        while True:
            await workflow.wait_condition(lambda: self._dirty)
            self._dirty = False
            self._revision += 1
            snap = ProposalSnapshot(
                workflow.info().workflow_id, self._in.facts.proposal_id,
                self._in.facts.version, self._status, self._revision,
                [dataclasses.replace(s) for s in self._steps],
                [dataclasses.replace(t) for t in self._tasks.values()], self._events,
                self._completed_at)
            self._events = []
            self._writing = True
            try:
                await workflow.execute_activity(PROJECT_PROPOSAL, snap,
                                                start_to_close_timeout=_QUICK,
                                                retry_policy=_RETRY)
            finally:
                self._writing = False

    async def _flush(self) -> None:
        self._dirty = True
        await workflow.wait_condition(lambda: not self._dirty and not self._writing)

    def _notice(self, task: TaskState, kind: str) -> Notice:
        f = self._in.facts
        what = {"assigned": "needs your review", "reminder": "is still waiting for your review",
                "escalated": "was escalated to you"}[kind]
        step = next(s for s in self._steps if s.key == task.step_key)
        return Notice(
            key=f"{task.id}:{kind}", subject=f"[dealdesk] Proposal {f.title} {what}",
            body=(f"{f.account_name} — proposal {f.title} (v{f.version}), "
                  f"{len(f.sections)} sections.\nStep: {step.name}.\n"
                  + "".join(f"Why: {r}\n" for r in step.reasons)),
            user_ids=[task.assignee_id] if task.assignee_id is not None else [],
            roles=[task.queue_role] if task.assignee_id is None and task.queue_role else [],
            link=f"/proposals/{f.proposal_id}")

    async def _notify(self, notices: list[Notice]) -> None:
        if notices:
            await workflow.execute_activity(NOTIFY, notices, start_to_close_timeout=_MAIL,
                                            retry_policy=_RETRY)
