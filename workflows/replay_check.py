"""Does a recorded history still replay on today's workflow code?

A change to a workflow's code that is not behind ``workflow.patched`` breaks every run in
flight, and makes the runs already closed impossible to re-run for an audit. Replaying a
history with the current classes (``workflows/registry.py``) finds that out without a
server: the replayer feeds the recorded events to the code and fails where the code asks
for something else (another activity, a timer the history doesn't have). The deal's
histories come from Temporal or the archive (``web/services/histories.py``); this module
only replays.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.registry import WORKFLOWS


@dataclass(frozen=True)
class ReplayOutcome:
    """One run's replay: ``error`` names why it diverged, None when it replays."""

    workflow_id: str
    run_id: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


async def replay(histories: Sequence[WorkflowHistory],
                 workflows: Sequence[type] = WORKFLOWS) -> list[ReplayOutcome]:
    """Replay each history (in order) with ``workflows``; one outcome per history."""
    if not histories:
        return []
    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    outcomes: list[ReplayOutcome] = []
    with ThreadPoolExecutor(max_workers=1) as executor:  # one history at a time: it's CPU
        replayer = Replayer(workflows=workflows, workflow_task_executor=executor)
        async with replayer.workflow_replay_iterator(each()) as results:
            async for result in results:
                failure = result.replay_failure
                outcomes.append(ReplayOutcome(
                    result.history.workflow_id, result.history.run_id,
                    None if failure is None else f"{type(failure).__name__}: {failure}"))
    return outcomes


__all__ = ["ReplayOutcome", "replay"]
