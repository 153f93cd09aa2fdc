"""The pieces of a deal's timeline that need no server: which workflow events become lines,
and how audit entries fold into the deal's state."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from web.services.deal_history import Entry, State, apply_entry, describe, workflow_entries

HISTORIES = Path(__file__).parent / "fixtures" / "histories"


def _saved(name: str) -> tuple[str, dict[str, Any]]:
    saved = json.loads((HISTORIES / name).read_text())
    return saved["workflow_id"], saved["history"]


def test_workflow_events_become_lines_without_bookkeeping() -> None:
    workflow_id, history = _saved("renewal_term_renewed.json")
    lines = workflow_entries(workflow_id, history)
    whats = [e.what for e in lines]
    assert whats[0] == "RenewalWorkflow started"
    assert any(w.startswith("activity ") and w.endswith(" completed") for w in whats)
    # Workflow tasks and patch markers are the engine's bookkeeping, not the deal's story.
    assert not any("workflow task" in w or "local activity local activity" in w for w in whats)
    assert len(lines) < len(history["events"])
    assert [e.at for e in lines] == sorted(e.at for e in lines)
    assert all(e.ref.startswith(f"{workflow_id}#") for e in lines)

    workflow_id, history = _saved("deal_lifecycle_won.json")
    whats = [e.what for e in workflow_entries(workflow_id, history)]
    assert "local activity move_deal done" in whats
    assert any(w.startswith("child RfpResponseWorkflow") and w.endswith("started") for w in whats)


def _entry(action: str, subject: str, **data: Any) -> Entry:
    return Entry(at=dt.datetime(2026, 12, 4, tzinfo=dt.UTC), source="audit", who="Rae Rep",
                 action=action, subject=subject, what=describe(action, data), ref="audit:1",
                 data=data)


def test_audit_entries_fold_into_the_deal_as_it_stood() -> None:
    state = State()
    for e in (_entry("deal.stage_changed", "deal:1", **{"from": "intake", "to": "quote"}),
              _entry("quote.created", "quote:3", list_amount=1000, net_amount=800,
                     currency="USD"),
              _entry("quote.submitted", "quote:3", version=2, hash="ab" * 32),
              _entry("chain.started", "quote:3", quote_version=2, steps=["manager"]),
              _entry("step.opened", "quote:3", step="manager"),
              _entry("task.approved", "quote:3", step="manager", quote_version=2)):
        apply_entry(state, e, {}, {})
    quote = state.quotes[3]
    assert (quote.version, quote.hash, quote.net_amount, quote.status) == (
        2, "ab" * 32, 800, "pending approval")
    assert [(s.name, s.status, s.decided_by) for s in state.chains[0].steps] == [
        ("manager", "approved", "Rae Rep")]
    apply_entry(state, _entry("chain.approved", "quote:3", quote_version=2), {}, {})
    apply_entry(state, _entry("quote.won", "quote:3", via="manual"), {}, {})
    assert (state.chains[0].status, quote.status, state.stage) == ("approved", "won", "won")
    assert describe("quote.won", {"via": "manual"}) == "won (marked won by hand)"
