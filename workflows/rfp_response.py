"""RfpResponseWorkflow: one per RFP (``rfp-{id}``), chasing the questions handed to
subject-matter experts (SMEs) until they are answered.

Each task is a question, its SME and a due time. A reminder goes to the SME
``remind_before_s`` ahead of the due time and an escalation to the RFP's owner
``escalate_after_s`` after it, each on a durable timer and each at most once, for questions
still unanswered then. The store is the truth: the activities skip questions answered
meanwhile and report which are still open, so a missed signal costs at most one wake-up.
The ``answered`` signal drops a question at once; ``recall`` (the RFP was withdrawn) ends
the workflow and with it every pending timer. Durations arrive in the input: the workflow
reads no settings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from temporalio import workflow
from temporalio.common import RetryPolicy


def workflow_id(prefix: str, rfp_id: int) -> str:
    return f"{prefix}rfp-{rfp_id}"


class Step(StrEnum):
    REMIND = "remind"
    ESCALATE = "escalate"


class Outcome(StrEnum):
    ANSWERED = "answered"
    RECALLED = "recalled"


NOTIFY_ACTIVITY = "notify_rfp_sme"


@dataclass(frozen=True)
class SmeTask:
    question_id: int
    assignee_id: int
    due_at: str
    """ISO 8601 with its offset (a datetime would not decode inside the workflow sandbox)."""

    @property
    def due(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.due_at)


@dataclass(frozen=True)
class RfpResponseInput:
    rfp_id: int
    tasks: list[SmeTask]
    remind_before_s: int = 86_400
    """How long before a task's due time its SME is reminded."""
    escalate_after_s: int = 86_400
    """How long after a task's due time, still unanswered, the RFP's owner is told."""


@dataclass(frozen=True)
class NotifyInput:
    rfp_id: int
    step: Step
    question_ids: list[int]


@dataclass(frozen=True)
class NotifyResult:
    open_question_ids: list[int]
    """Of the questions given, those still unanswered (the store's view)."""
    recalled: bool = False


@dataclass(frozen=True)
class RfpResponseResult:
    outcome: Outcome
    reminded: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)


# --- pure decisions (unit-tested without Temporal) -------------------------------------------

@dataclass(frozen=True)
class Due:
    at: dt.datetime
    step: Step
    question_ids: tuple[int, ...]


def schedule(inp: RfpResponseInput, open_ids: set[int], done: set[tuple[Step, int]]) -> list[Due]:
    """What is still to happen for the open questions, soonest first; steps at one time are
    grouped (one mail per SME batch, not per question)."""
    by_time: dict[tuple[dt.datetime, Step], list[int]] = {}
    for t in inp.tasks:
        if t.question_id not in open_ids:
            continue
        for step, at in ((Step.REMIND, t.due - timedelta(seconds=inp.remind_before_s)),
                         (Step.ESCALATE, t.due + timedelta(seconds=inp.escalate_after_s))):
            if (step, t.question_id) not in done:
                by_time.setdefault((at, step), []).append(t.question_id)
    order = sorted(by_time, key=lambda k: (k[0], k[1] != Step.REMIND))
    return [Due(at, step, tuple(sorted(by_time[(at, step)]))) for at, step in order]


_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                     maximum_interval=timedelta(seconds=30))


@workflow.defn
class RfpResponseWorkflow:
    def __init__(self) -> None:
        self._answered: set[int] = set()
        self._recalled = False

    @workflow.signal
    def answered(self, question_id: int) -> None:
        self._answered.add(question_id)

    @workflow.signal
    def recall(self) -> None:
        self._recalled = True

    @workflow.run
    async def run(self, inp: RfpResponseInput) -> RfpResponseResult:
        open_ids = {t.question_id for t in inp.tasks}
        done: set[tuple[Step, int]] = set()
        reminded: list[int] = []
        escalated: list[int] = []
        while True:
            open_ids -= self._answered
            if self._recalled:
                return RfpResponseResult(Outcome.RECALLED, reminded, escalated)
            pending = schedule(inp, open_ids, done)
            if not open_ids or not pending:
                return RfpResponseResult(Outcome.ANSWERED, reminded, escalated)
            nxt = pending[0]
            wait = nxt.at - workflow.now()
            if wait > timedelta(0):
                seen = len(self._answered)
                # Wake early for a signal: an answer may empty the batch, a recall ends all.
                try:
                    await workflow.wait_condition(
                        lambda seen=seen: self._recalled or len(self._answered) != seen,  # type: ignore[misc]
                        timeout=wait)
                    continue
                except TimeoutError:
                    pass
            ids = [q for q in nxt.question_ids if q not in self._answered]
            result: NotifyResult = await workflow.execute_activity(
                NOTIFY_ACTIVITY, NotifyInput(inp.rfp_id, nxt.step, ids),
                result_type=NotifyResult, start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_RETRY)
            done.update((nxt.step, q) for q in nxt.question_ids)
            if result.recalled:
                self._recalled = True
                continue
            still = set(result.open_question_ids)
            (reminded if nxt.step == Step.REMIND else escalated).extend(
                q for q in ids if q in still)
            open_ids -= set(ids) - still
