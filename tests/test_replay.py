"""Saved histories of real runs (tests/fixtures/histories/, written by the tests that made
them with DEALDESK_SAVE_HISTORY=FILE) replay on today's workflow code: a change that would
break an in-flight chain or envelope fails here. Re-save a history only for a deliberate,
patched change (workflow.patched). Every workflow type the worker registers has one, and a
deliberately non-deterministic change is caught."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from tests.drifted_workflows import DriftedBillingWorkflow
from workflows.registry import WORKFLOWS
from workflows.replay_check import replay

HISTORIES = Path(__file__).parent / "fixtures" / "histories"
SAVED = sorted(HISTORIES.glob("*.json"))


def _load(path: Path) -> WorkflowHistory:
    saved = json.loads(path.read_text())
    # The id matters: the workflows derive task and event keys from it.
    return WorkflowHistory.from_json(saved["workflow_id"], saved["history"])


def _type_of(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
async def test_saved_history_replays(path: Path) -> None:
    [outcome] = await replay([await asyncio.to_thread(_load, path)])
    assert outcome.ok, outcome.error


def test_every_registered_workflow_has_a_saved_history() -> None:
    registered = {w.__temporal_workflow_definition.name for w in WORKFLOWS}  # type: ignore[attr-defined]
    assert registered - {_type_of(_load(path)) for path in SAVED} == set()


async def test_a_change_without_a_patch_fails_the_replay() -> None:
    history = await asyncio.to_thread(_load, HISTORIES / "billing_one_time.json")
    [outcome] = await replay([history], workflows=[DriftedBillingWorkflow])
    assert not outcome.ok
    assert outcome.error and "Nondeterminism" in outcome.error, outcome.error
    [today] = await replay([history])
    assert today.ok, today.error
