"""Moving billing runs off their old ``deal-{quote}`` workflow ids.

Releases before the deal process started a won quote's BillingWorkflow as ``deal-{quote}``;
today it is ``billing-{quote}`` (``workflows.billing.billing_workflow_id``), and ``dealflow-``
names a deal's own process. A billing run sleeps until its next invoice date, possibly for
years, so runs started under the old id are moved once when a worker starts: the same input
is started under the new id, then the old run is terminated. Issuing an invoice is idempotent
on (quote, installment), so an installment the old run was issuing at that moment is issued
once, by whichever run gets there first.
"""

from __future__ import annotations

import contextlib
import logging
import re

from temporalio.client import Client
from temporalio.common import RawValue, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from workflows.billing import BillingWorkflow, billing_workflow_id

log = logging.getLogger("dealdesk.worker")
RUNNING_BILLING = (f"WorkflowType = '{BillingWorkflow.__name__}' "
                   "AND ExecutionStatus = 'Running'")


async def move_billing_runs(client: Client, prefix: str) -> list[str]:
    """Move every running billing run with an old id of this prefix; the new ids."""
    old_id = re.compile(re.escape(prefix) + r"deal-(\d+)")
    moved = []
    async for run in client.list_workflows(RUNNING_BILLING):
        found = old_id.fullmatch(run.id)
        if found is None:
            continue
        old = client.get_workflow_handle(run.id, run_id=run.run_id)
        started = (await old.fetch_history()).events[0] \
            .workflow_execution_started_event_attributes
        new_id = billing_workflow_id(prefix, int(found.group(1)))
        # Already there when moved before (by another worker, or a round cut short).
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await client.start_workflow(
                BillingWorkflow.__name__, RawValue(started.input.payloads[0]), id=new_id,
                task_queue=started.task_queue.name,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        try:
            await old.terminate(reason=f"moved to {new_id}")
        except RPCError as e:  # ended meanwhile (visibility lags a moment behind)
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        log.info("billing run %s moved to %s", run.id, new_id)
        moved.append(new_id)
    return moved
