"""Every input, result, update and query payload of the approval chain, as frozen dataclasses.

Times are aware datetimes; money is integer minor units; percentages are floats.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Decision = Literal["approve", "reject", "request_changes"]
GroupMode = Literal["all", "any", "quorum"]


@dataclass(frozen=True)
class Actor:
    """The person acting, as authenticated by the web tier."""

    user_id: int
    name: str
    roles: list[str]


@dataclass(frozen=True)
class QuoteFacts:
    """What the policy may look at, frozen at submission."""

    subject: ClassVar[str] = "quote"
    """Which of a policy's rules apply (``RuleSpec.subject``)."""

    quote_id: int
    version: int
    title: str
    account_id: int
    account_name: str
    owner_id: int
    currency: str
    total: int
    list_total: int
    discount_pct: float
    margin_pct: float
    term_months: int
    nonstandard_terms: list[str] = field(default_factory=list)
    product_families: list[str] = field(default_factory=list)
    channel: str = "direct"
    channel_conflicts: list[str] = field(default_factory=list)
    """SKUs whose partner price undercuts the direct price beyond the channel's band."""

    def fact(self, name: str) -> Any:
        return getattr(self, name)


@dataclass(frozen=True)
class SectionFact:
    """One section of a proposal version, as its policy reads it."""

    title: str
    digest: str
    """SHA-256 of what the section says (its DOCX or its text): what a review rests on."""
    tags: list[str] = field(default_factory=list)
    standard: bool = True
    """Taken from the content library unchanged (False: text written for this proposal)."""
    review_due: bool = False
    """From a library item whose review date has passed (its content may be stale)."""


@dataclass(frozen=True)
class ProposalFacts:
    """What the policy's proposal rules may look at, frozen when a version is submitted."""

    subject: ClassVar[str] = "proposal"

    proposal_id: int
    version: int
    title: str
    account_name: str
    owner_id: int
    sections: list[SectionFact]
    currency: str = ""
    total: int = 0
    """The linked quote's net total (minor units), 0 without a quote."""
    discount_pct: float = 0.0
    """The linked quote's discount, 0 without a quote."""

    def fact(self, name: str) -> Any:
        match name:
            case "nonstandard_sections":
                return [s.title for s in self.sections if not s.standard]
            case "unreviewed_sections":
                return [s.title for s in self.sections if s.review_due]
            case "section_tags":
                return sorted({t for s in self.sections for t in s.tags})
            case "section_count":
                return len(self.sections)
        return getattr(self, name)

    def basis(self, cond: Condition) -> Any:
        """What an approval under ``cond`` rests on: for a condition on sections, the
        content of the sections it is about, so that changing one section re-opens only
        the reviews that read it; otherwise the fact's value."""
        match cond.fact:
            case "nonstandard_sections":
                return sorted(s.digest for s in self.sections if not s.standard)
            case "unreviewed_sections":
                return sorted(s.digest for s in self.sections if s.review_due)
            case "section_tags" if cond.op in ("contains", "any"):
                wanted = {cond.value} if cond.op == "contains" else set(cond.value)
                return sorted(s.digest for s in self.sections if wanted.intersection(s.tags))
            case "section_tags":
                return sorted(s.digest for s in self.sections if s.tags)
        return self.fact(cond.fact)


@dataclass(frozen=True)
class Target:
    """Who a seat belongs to: a role queue or one named user."""

    role: str | None = None
    user_id: int | None = None
    label: str = ""


@dataclass(frozen=True)
class GroupSpec:
    targets: list[Target]
    mode: GroupMode = "all"
    quorum: int = 0  # used when mode == "quorum"


@dataclass(frozen=True)
class StepSpec:
    key: str
    name: str
    groups: list[GroupSpec]
    after: list[str] = field(default_factory=list)
    remind_after_s: int | None = None
    escalate_after_s: int | None = None


@dataclass(frozen=True)
class Condition:
    fact: str
    op: str
    value: Any


@dataclass(frozen=True)
class RuleSpec:
    id: str
    description: str
    conditions: list[Condition]
    steps: list[str]
    subject: str = "quote"
    """What the rule is about: ``quote`` or ``proposal`` (facts differ)."""


@dataclass(frozen=True)
class PolicySpec:
    name: str
    version: int
    steps: list[StepSpec]
    rules: list[RuleSpec]
    escalation_role: str = "deal_desk"


@dataclass(frozen=True)
class PriorApproval:
    """An approved step of an earlier version's chain, cited when it carries over."""

    step_key: str
    fingerprint: str
    decided_by: str
    decided_at: dt.datetime
    quote_version: int
    workflow_id: str


@dataclass(frozen=True)
class ChainInput:
    facts: QuoteFacts
    policy: PolicySpec
    submitted_by: Actor
    prior_approvals: list[PriorApproval] = field(default_factory=list)


# --- state as projected and queried -------------------------------------------------------


@dataclass
class TaskState:
    id: str
    step_key: str
    group_index: int
    seat: int
    queue_role: str | None
    assignee_id: int | None
    assignee_name: str
    created_at: dt.datetime
    due_at: dt.datetime | None
    on_behalf_of_id: int | None = None
    on_behalf_of_name: str = ""
    claimed_by_id: int | None = None
    claimed_by_name: str = ""
    escalated_from: str | None = None
    state: str = "open"
    decided_by_id: int | None = None
    decided_by_name: str = ""
    decided_at: dt.datetime | None = None
    comment: str = ""
    reminded_at: dt.datetime | None = None


@dataclass
class StepState:
    key: str
    name: str
    position: int
    rule_ids: list[str]
    reasons: list[str]
    fingerprint: str
    state: str = "pending"
    carried_from: PriorApproval | None = None
    opened_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None


@dataclass(frozen=True)
class AuditRecord:
    key: str
    at: dt.datetime
    actor: str
    """A label, as older histories carry it; the fields below are the actor itself."""
    action: str
    data: dict[str, Any]
    actor_kind: str = ""
    """``user`` or ``system``; empty in records made before the structured actor existed
    (the projection then reads ``actor``)."""
    actor_user_id: int | None = None
    actor_name: str = ""
    actor_process: str = ""


@dataclass(frozen=True)
class ChainSnapshot:
    workflow_id: str
    facts: QuoteFacts
    policy_name: str
    policy_version: int
    submitted_by: Actor
    status: str
    revision: int
    steps: list[StepState]
    tasks: list[TaskState]
    events: list[AuditRecord]
    completed_at: dt.datetime | None = None


# --- updates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionInput:
    task_id: str
    actor: Actor
    decision: Decision
    comment: str = ""
    quote_version: int | None = None


@dataclass(frozen=True)
class ClaimInput:
    task_id: str
    actor: Actor
    claim: bool = True


@dataclass(frozen=True)
class DelegateInput:
    task_id: str
    actor: Actor
    to_user_id: int
    to_user_name: str
    comment: str = ""
    to_user_roles: list[str] = field(default_factory=list)
    """The target's roles, for the validator's "could they decide it" (``rules``); an
    input without them (an older caller) names someone who can't."""


@dataclass(frozen=True)
class RecallInput:
    actor: Actor
    comment: str = ""


@dataclass(frozen=True)
class TaskResult:
    """What an update returns: the task's state now, and the chain's."""

    task: TaskState
    chain_status: str
    step_open: bool | None = None
    """The task's step still waits for other decisions (all-of, K-of-N)."""
    steps_left: list[str] | None = None
    """The names of the other steps still to decide, in order. The chain's status stays
    "running" until its main line ends it, a moment after the last step closes: nothing left
    here then means the quote is being approved. None from a worker older than this field."""


# --- activity payloads --------------------------------------------------------------------


@dataclass(frozen=True)
class Seat:
    """A resolved seat: the queue or person who gets the task (after delegation)."""

    queue_role: str | None
    assignee_id: int | None
    assignee_name: str
    on_behalf_of_id: int | None = None
    on_behalf_of_name: str = ""


@dataclass(frozen=True)
class ResolveSeatsInput:
    targets: list[Target]
    at: dt.datetime
    submitter_id: int | None = None
    """An away approver's delegate who is this chain's submitter (or the quote's owner) is
    passed over: the seat stays with the approver."""
    owner_id: int | None = None


@dataclass(frozen=True)
class EscalationInput:
    tasks: list[TaskState]
    escalation_role: str
    submitter_id: int | None = None
    owner_id: int | None = None


@dataclass(frozen=True)
class Notice:
    """One notification; ``key`` makes it idempotent per recipient."""

    key: str
    subject: str
    body: str
    user_ids: list[int] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    link: str = ""


@dataclass(frozen=True)
class ChainResult:
    status: str
    steps: list[StepState]
