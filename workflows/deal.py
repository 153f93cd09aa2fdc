"""DealWorkflow: one per deal (``dealflow-{id}``), the durable process from intake to won or lost.

Each step of a deal (an RFP response, a quote's approval chain, a proposal's review, an
envelope) is a child workflow of the deal's process, started on the ``start_child`` signal
that the store's outbox sends (signal-with-start) once the step's rows commit
(``store.starts``): handing a step over needs the Temporal server, never a worker. A step may be
repeated (a new quote version, a second envelope after a decline) or skipped; each child
keeps its own workflow id, so pages and APIs address it as before. The process moves the
deal's stage as steps start and end (``move_deal``, never once the deal is closed) and
answers ``state``: the stage and each step with its status. A renewal deal's approved quote
is sent for signature at once (``advance_renewal_deal``).

The store closes a deal (a quote won, a person marking it lost) and tells the process with
the ``close`` signal through the same outbox (a winning envelope, the process's child, also
signals it at once). Won: the process waits up to five minutes for running steps to end on
their own (the envelope that won the deal is still sealing), then ends; steps still running
are abandoned, not cancelled. Lost: every running step is cancelled and the process waits
until each has cleaned up (a chain closes its tasks, an envelope is voided and its signers
told, an RFP is recalled), so a lost deal leaves no child running.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.deal_messages import (
        NEXT_STAGE,
        STEP_OF_TYPE,
        ChildStart,
        ChildView,
        CloseDeal,
        DealInput,
        DealState,
        StageInput,
    )

ADVANCE_RENEWAL_DEAL = "advance_renewal_deal"
"""A renewal deal's approved quote goes for signature (``dealdesk/renewal_steps.py``)."""
MOVE_DEAL = "move_deal"
CLOSE_LOST_DEAL = "close_lost_deal"
_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                     maximum_interval=timedelta(seconds=10))
_QUICK = timedelta(seconds=15)
_WON_GRACE = timedelta(minutes=5)
_ADVANCE = timedelta(minutes=5)  # sending renders the contract and converts it to PDF


def _outcome(result: Any) -> str:
    """A child's outcome from its result: a status string, or a result's ``status`` or
    ``outcome`` field."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        return str(result.get("status") or result.get("outcome") or "completed")
    return "completed"


@workflow.defn
class DealWorkflow:
    @workflow.init
    def __init__(self, inp: DealInput) -> None:
        self._in = inp
        self._status = "open"
        self._stage = ""
        self._children: dict[str, ChildView] = {}
        self._handles: dict[str, workflow.ChildWorkflowHandle[Any, Any]] = {}
        self._steps: list[asyncio.Task[None]] = []
        self._close: CloseDeal | None = None

    @workflow.run
    async def run(self, inp: DealInput) -> str:
        self._stage = await self._move("", f"deal-{inp.deal_id}-opened")
        await workflow.wait_condition(lambda: self._close is not None)
        assert self._close is not None
        if self._close.outcome == "lost":
            self._status = "lost"
            # Steps being started as the deal closed are running once started.
            await workflow.wait_condition(self._all_started)
            for view in [c for c in self._children.values() if c.status == "running"]:
                handle = self._handles.get(view.workflow_id)
                if handle is not None:
                    handle.cancel()
                    continue
                try:  # started before it was this deal's child: ask it by id
                    await workflow.get_external_workflow_handle(view.workflow_id).cancel()
                    view.status = "cancel requested"
                except Exception:  # it had ended meanwhile
                    view.status = "ended"
            await workflow.execute_local_activity(
                CLOSE_LOST_DEAL, inp.deal_id, start_to_close_timeout=_QUICK,
                retry_policy=_RETRY)
            while not all(t.done() for t in self._steps):  # steps offered meanwhile too
                await asyncio.gather(*self._steps, return_exceptions=True)
        else:
            self._status = "won"
            # The envelope that won it is still sealing: let running steps end on their own,
            # for a while, so the process's record shows how they ended.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._all_started() and not any(
                        c.status == "running" for c in self._children.values()
                        if c.workflow_id in self._handles), timeout=_WON_GRACE)
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._stage = self._status
        return self._status

    @workflow.signal
    def start_child(self, step: ChildStart) -> None:
        """Start a step as a child (once per workflow id; a repeated delivery is ignored). A
        step offered to a lost deal is started and cancelled with the rest, so what it
        changed in the store is undone by its own cleanup."""
        if step.workflow_id in self._children:
            return
        view = ChildView(step.workflow_id, step.workflow_type,
                         STEP_OF_TYPE.get(step.workflow_type, "step"), "starting",
                         workflow.now().isoformat())
        self._children[step.workflow_id] = view
        self._steps.append(asyncio.create_task(self._run_step(step, view)))

    def _all_started(self) -> bool:
        return not any(c.status == "starting" for c in self._children.values())

    async def _run_step(self, step: ChildStart, view: ChildView) -> None:
        try:
            handle = await workflow.start_child_workflow(
                step.workflow_type, step.arg, id=step.workflow_id, task_queue=step.task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                cancellation_type=workflow.ChildWorkflowCancellationType
                .WAIT_CANCELLATION_COMPLETED)
        except WorkflowAlreadyStartedError:
            # Started on its own before the deal had a process (or by an older release).
            view.step, view.status = f"{view.step} (not a child)", "running"
            return
        self._handles[step.workflow_id] = handle
        view.status = "running"
        if self._status == "lost":  # offered after the loss: undone like the rest
            handle.cancel()
        elif self._close is None:
            self._stage = await self._move(view.step, f"{step.workflow_id}:started")
        await self._watch(view, handle)

    @workflow.signal
    def close(self, close: CloseDeal) -> None:
        if self._close is None:
            self._close = close

    @workflow.query
    def state(self) -> DealState:
        return DealState(self._in.deal_id, self._status, self._stage,
                         list(self._children.values()))

    async def _watch(self, view: ChildView, handle: workflow.ChildWorkflowHandle[Any, Any]
                     ) -> None:
        try:
            view.status = _outcome(await handle)
        except ChildWorkflowError as e:
            view.status = "cancelled" if isinstance(e.cause, asyncio.CancelledError) or \
                type(e.cause).__name__ == "CancelledError" else "failed"
        except asyncio.CancelledError:
            view.status = "cancelled"
        view.closed_at = workflow.now().isoformat()
        following = NEXT_STAGE.get((view.step, view.status))
        if following and self._close is None:
            self._stage = await self._move(following, f"{view.workflow_id}:{view.status}")
        if self._in.renewal and (view.step, view.status) == ("approval", "approved") \
                and self._close is None:
            await workflow.execute_activity(
                ADVANCE_RENEWAL_DEAL, self._in.deal_id, result_type=str,
                start_to_close_timeout=_ADVANCE, retry_policy=_RETRY)

    async def _move(self, stage: str, key: str) -> str:
        """Set the deal's stage in the store (unless it is closed); its stage after."""
        return str(await workflow.execute_local_activity(
            MOVE_DEAL, StageInput(self._in.deal_id, stage, key), result_type=str,
            start_to_close_timeout=_QUICK, retry_policy=_RETRY))
