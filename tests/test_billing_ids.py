"""Billing runs started under the old ``deal-{quote}`` ids move to ``billing-{quote}`` on the
real dev server: same input, old run terminated, once however often it runs."""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecutionStatus

from dealdesk.billing_ids import move_billing_runs
from dealdesk.settings import Settings
from tests.support import eventually
from workflows.billing import BillingInput, BillingWorkflow, billing_workflow_id


async def test_old_billing_runs_move_to_their_new_ids(client: Client,
                                                      settings: Settings) -> None:
    prefix = settings.workflow_prefix
    inp = BillingInput(41, ["2099-01-01", "2100-01-01"])
    old = await client.start_workflow(BillingWorkflow.run, inp, id=f"{prefix}deal-41",
                                      task_queue=settings.task_queue)
    # A run already under its new id, and another prefix's old run, are left alone.
    await client.start_workflow(BillingWorkflow.run, BillingInput(42, ["2099-01-01"]),
                                id=billing_workflow_id(prefix, 42),
                                task_queue=settings.task_queue)
    other = await client.start_workflow(BillingWorkflow.run, BillingInput(43, ["2099-01-01"]),
                                        id=f"other-{prefix}deal-43",
                                        task_queue=settings.task_queue)

    async def moved() -> list[str] | None:
        return await move_billing_runs(client, prefix) or None

    assert await eventually(moved) == [billing_workflow_id(prefix, 41)]
    assert (await old.describe()).status == WorkflowExecutionStatus.TERMINATED
    new = client.get_workflow_handle(billing_workflow_id(prefix, 41))
    assert (await new.describe()).status == WorkflowExecutionStatus.RUNNING
    started = (await new.fetch_history()).events[0].workflow_execution_started_event_attributes
    assert started.input == (await old.fetch_history()).events[0] \
        .workflow_execution_started_event_attributes.input
    assert (await other.describe()).status == WorkflowExecutionStatus.RUNNING
    # Visibility may still list the terminated run for a moment: a second round starts
    # nothing new and leaves the moved run running.
    await move_billing_runs(client, prefix)
    assert (await new.describe()).status == WorkflowExecutionStatus.RUNNING
    await new.terminate()
    await other.terminate()
    await client.get_workflow_handle(billing_workflow_id(prefix, 42)).terminate()
