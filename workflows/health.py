"""HealthRecomputeWorkflow: one run of the health recompute, started nightly by the Temporal
Schedule ``health-nightly`` (see ``dealdesk/housekeeping.py``) or on demand by an admin.

It only calls the ``recompute_health`` activity, which is idempotent: a run retried, run
twice the same day or run in parallel with another writes each day's score once and makes
each band drop's task, audit row and mail once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

RECOMPUTE_ACTIVITY = "recompute_health"
SCHEDULE_ID = "health-nightly"
NIGHTLY_CRON = "0 2 * * *"
"""02:00 UTC every day."""


@dataclass(frozen=True)
class RecomputeInput:
    account_id: int | None = None
    """One account, or every account with measures."""
    day: str = ""
    """ISO date to score as; empty: today (UTC) on the activity's clock."""


@dataclass(frozen=True)
class RecomputeResult:
    scored: int
    drops: int
    """How many band drops this run found (each made one task)."""


_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                     maximum_interval=timedelta(seconds=30))


@workflow.defn
class HealthRecomputeWorkflow:
    @workflow.run
    async def run(self, inp: RecomputeInput) -> RecomputeResult:
        result: RecomputeResult = await workflow.execute_activity(
            RECOMPUTE_ACTIVITY, inp, result_type=RecomputeResult,
            start_to_close_timeout=timedelta(minutes=5), retry_policy=_RETRY)
        return result
