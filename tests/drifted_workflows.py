"""A workflow changed without ``workflow.patched``: registered under its old name, it asks
for a timer before the first activity its saved histories recorded. Replaying one of them
must fail (``tests/test_replay.py``), or the replay check would pass anything."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.billing import BillingInput, BillingWorkflow


@workflow.defn(name="BillingWorkflow")
class DriftedBillingWorkflow(BillingWorkflow):
    @workflow.run
    async def run(self, inp: BillingInput) -> list[str]:
        await workflow.sleep(timedelta(seconds=1))  # new, and not behind a patch
        return await super().run(inp)
