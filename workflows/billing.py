"""BillingWorkflow: one per won deal (``billing-{quote id}``), issuing its invoices.

The first installment is invoiced when the deal is won, later ones (annual in advance) on each
anniversary: the workflow sleeps until the issue date, durably, for as long as the term runs.
Each invoice is one idempotent activity keyed by (quote, installment), so a retry never
issues a second invoice or burns a number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy


@dataclass(frozen=True)
class BillingInput:
    quote_id: int
    issue_dates: list[str]
    """ISO dates, one per installment, in order (from cpq.billing.schedule)."""


@dataclass(frozen=True)
class IssueInvoiceInput:
    quote_id: int
    installment: int


def billing_workflow_id(prefix: str, quote_id: int) -> str:
    """A won quote's billing run. Releases before the deal process called it
    ``deal-{quote id}``; ``dealdesk.billing_ids`` moves such runs still running."""
    return f"{prefix}billing-{quote_id}"


_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                     maximum_interval=timedelta(seconds=10))


@workflow.defn
class BillingWorkflow:
    @workflow.run
    async def run(self, inp: BillingInput) -> list[str]:
        numbers = []
        for index, issue_on in enumerate(inp.issue_dates, start=1):
            at = dt.datetime.combine(dt.date.fromisoformat(issue_on), dt.time(), dt.UTC)
            wait = at - workflow.now()
            if wait > timedelta(0):
                await workflow.sleep(wait)
            numbers.append(await workflow.execute_activity(
                "issue_invoice", IssueInvoiceInput(inp.quote_id, index), result_type=str,
                start_to_close_timeout=timedelta(seconds=30), retry_policy=_RETRY))
        return numbers
