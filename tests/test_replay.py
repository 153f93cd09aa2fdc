"""Saved histories of real runs (tests/fixtures/histories/, written by the tests that made
them with DEALDESK_SAVE_HISTORY=FILE) replay on today's workflow code: a change that would
break an in-flight chain or envelope fails here. Re-save a history only for a deliberate,
patched change (workflow.patched)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.approval_chain import ApprovalChainWorkflow
from workflows.deal import DealWorkflow
from workflows.envelope import EnvelopeWorkflow
from workflows.renewal import RenewalWorkflow
from workflows.rfp_response import RfpResponseWorkflow

HISTORIES = Path(__file__).parent / "fixtures" / "histories"


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_saved_history_replays(path: Path) -> None:
    saved = json.loads(await asyncio.to_thread(path.read_text))
    # The id matters: the workflows derive task and event keys from it.
    history = WorkflowHistory.from_json(saved["workflow_id"], saved["history"])
    result = await Replayer(workflows=[ApprovalChainWorkflow, EnvelopeWorkflow,
                                 RfpResponseWorkflow, RenewalWorkflow,
                                 DealWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
