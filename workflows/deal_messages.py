"""DealWorkflow's input, update, signal and query payloads, as frozen dataclasses.

A deal's steps run as child workflows of its DealWorkflow: the store's outbox hands each one
over as a :class:`ChildStart` (``store.starts``), with the child's own workflow id, type, task
queue and input, so the child is the same workflow it is without a deal, addressed by the
same id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STEP_OF_TYPE = {
    "RfpResponseWorkflow": "rfp",
    "ApprovalChainWorkflow": "approval",
    "ProposalWorkflow": "proposal",
    "EnvelopeWorkflow": "signing",
}
"""The deal stage a child workflow's start moves the deal to."""

NEXT_STAGE = {
    ("rfp", "answered"): "quote", ("rfp", "recalled"): "quote",
    ("approval", "approved"): "proposal", ("approval", "rejected"): "quote",
    ("approval", "changes_requested"): "quote", ("approval", "recalled"): "quote",
    ("proposal", "approved"): "contract", ("proposal", "rejected"): "proposal",
    ("proposal", "changes_requested"): "proposal", ("proposal", "recalled"): "proposal",
    ("signing", "declined"): "contract", ("signing", "voided"): "contract",
    ("signing", "expired"): "contract", ("signing", "failed"): "contract",
}
"""Where a deal goes when a step's child ends with an outcome (a completed envelope wins the
deal through the store, which then closes the deal's workflow)."""

@dataclass(frozen=True)
class DealInput:
    deal_id: int
    renewal: bool = False
    """The deal renews a subscription: its approved quote goes for signature on its own."""


@dataclass(frozen=True)
class ChildStart:
    """Start one step of the deal as a child workflow (idempotent on ``workflow_id``)."""

    workflow_id: str
    workflow_type: str
    task_queue: str
    arg: Any
    """The child's input, as its JSON value."""


@dataclass(frozen=True)
class CloseDeal:
    """The store closed the deal: ``won`` lets running steps finish on their own; ``lost``
    cancels every running step and waits until each has cleaned up."""

    outcome: str
    reason: str = ""


@dataclass(frozen=True)
class StageInput:
    deal_id: int
    stage: str
    key: str
    """Idempotency key of the move (the child's workflow id and what happened to it)."""


@dataclass
class ChildView:
    workflow_id: str
    workflow_type: str
    step: str
    status: str
    """starting, running, then the child's outcome (approved, completed, declined…),
    cancelled or failed."""
    started_at: str
    closed_at: str | None = None


@dataclass
class DealState:
    deal_id: int
    status: str
    """open, won or lost."""
    stage: str
    children: list[ChildView] = field(default_factory=list)

    @property
    def running(self) -> list[ChildView]:
        return [c for c in self.children if c.status == "running"]
