"""Pure decision functions of the approval chain: no Temporal, no I/O. Unit-tested directly."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from workflows.messages import (
    Condition,
    GroupSpec,
    PolicySpec,
    PriorApproval,
    QuoteFacts,
    RuleSpec,
    StepSpec,
)


class Facts(Protocol):
    """What a chain is planned from: a quote's facts or a proposal's."""

    subject: ClassVar[str]

    def fact(self, name: str) -> Any: ...


FACTS: dict[str, str] = {
    "discount_pct": "number",
    "total": "number",
    "list_total": "number",
    "margin_pct": "number",
    "term_months": "number",
    "nonstandard_terms": "list",
    "product_families": "list",
    "currency": "text",
    "channel": "text",
    "channel_conflicts": "list",
}
"""What a quote rule may read (``RuleSpec.subject == "quote"``)."""
PROPOSAL_FACTS: dict[str, str] = {
    "nonstandard_sections": "list",
    "unreviewed_sections": "list",
    "section_tags": "list",
    "section_count": "number",
    "discount_pct": "number",
    "total": "number",
    "currency": "text",
}
"""What a proposal rule may read (``workflows.messages.ProposalFacts``): the titles of the
sections written for this proposal, of those from library items due for review, the tags of
all its sections, and the linked quote's discount and total."""
SUBJECT_FACTS = {"quote": FACTS, "proposal": PROPOSAL_FACTS}
OPS: dict[str, tuple[str, ...]] = {
    "number": ("gt", "gte", "lt", "lte", "eq", "ne"),
    "list": ("contains", "any", "not_empty", "empty"),
    "text": ("eq", "ne", "in"),
}
OP_WORDS = {
    "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "eq": "=", "ne": "≠",
    "contains": "contains", "any": "contains any of", "not_empty": "is not empty",
    "empty": "is empty", "in": "is one of",
}


def condition_holds(cond: Condition, facts: Facts) -> bool:
    actual = facts.fact(cond.fact)
    v = cond.value
    match cond.op:
        case "gt":
            return bool(actual > v)
        case "gte":
            return bool(actual >= v)
        case "lt":
            return bool(actual < v)
        case "lte":
            return bool(actual <= v)
        case "eq":
            return bool(actual == v)
        case "ne":
            return bool(actual != v)
        case "in":
            return actual in v
        case "contains":
            return v in actual
        case "any":
            return any(x in actual for x in v)
        case "not_empty":
            return len(actual) > 0
        case "empty":
            return len(actual) == 0
    raise ValueError(f"unknown operator {cond.op!r}")


def describe(cond: Condition) -> str:
    if cond.op in ("not_empty", "empty"):
        return f"{cond.fact} {OP_WORDS[cond.op]}"
    return f"{cond.fact} {OP_WORDS.get(cond.op, cond.op)} {cond.value}"


def rule_matches(rule: RuleSpec, facts: Facts) -> bool:
    return rule.subject == facts.subject and all(condition_holds(c, facts) for c in rule.conditions)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def step_fingerprint(step: StepSpec, rules: Iterable[RuleSpec], facts: Facts) -> str:
    """Hash of what a step's approval rests on: its definition and the facts its rules read.

    Two versions of a quote with the same fingerprint for a step need not be approved again.
    A proposal's facts say what each condition rests on (``ProposalFacts.basis``: for a
    condition on sections, their content), so a changed section re-opens only the steps
    whose rules read it.
    """
    rules = list(rules)
    basis = getattr(facts, "basis", None)
    read: dict[str, Any]
    if basis is None:
        read = {name: facts.fact(name) for name in sorted({c.fact for r in rules
                                                          for c in r.conditions})}
    else:
        read = {f"{c.fact} {c.op} {_digest(c.value)}": basis(c)
                for r in rules for c in r.conditions}
    return _digest(
        {
            "step": {"key": step.key, "groups": [_group_key(g) for g in step.groups]},
            "rules": sorted(r.id for r in rules),
            "facts": read,
        }
    )


def _group_key(group: GroupSpec) -> dict[str, Any]:
    return {
        "mode": group.mode,
        "quorum": group.quorum,
        "targets": [[t.role, t.user_id] for t in group.targets],
    }


@dataclass(frozen=True)
class PlannedStep:
    spec: StepSpec
    rule_ids: list[str]
    reasons: list[str]
    fingerprint: str


def topological_order(steps: list[StepSpec]) -> list[StepSpec]:
    """Order steps so each runs after those it names in ``after``; ties keep declared order.

    Raises ValueError naming the steps of a cycle.
    """
    keys = {s.key for s in steps}
    pending = {s.key: {a for a in s.after if a in keys} for s in steps}
    ordered: list[StepSpec] = []
    while pending:
        ready = [s for s in steps if s.key in pending and not pending[s.key]]
        if not ready:
            raise ValueError("steps form a cycle (each runs after the next): "
                             + " → ".join(_cycle(pending)))
        for s in ready:
            pending.pop(s.key, None)  # a duplicated key is reported by parse_policy
            ordered.append(s)
        for deps in pending.values():
            deps.difference_update(s.key for s in ready)
    return ordered


def _cycle(pending: dict[str, set[str]]) -> list[str]:
    """One cycle among steps that all still wait, as ``a → b → a`` (a runs after b, ...).

    Every pending step waits on another pending one, so following the links must loop; steps
    that merely wait on the cycle are left out of the message.
    """
    path: list[str] = []
    key = min(pending)
    while key not in path:
        path.append(key)
        key = min(pending[key])
    return [*path[path.index(key):], key]


def plan_chain(policy: PolicySpec, facts: Facts) -> list[PlannedStep]:
    """Which steps this quote (or proposal) needs, in the order they run, with the rules
    that added them. Only the rules about the facts' subject apply."""
    by_step: dict[str, list[RuleSpec]] = {}
    for rule in policy.rules:
        if rule_matches(rule, facts):
            for key in rule.steps:
                by_step.setdefault(key, []).append(rule)
    # Order the whole policy, then keep the selected steps: a step after an unselected one
    # still runs after that one's own predecessors.
    plan = []
    for spec in (s for s in topological_order(policy.steps) if s.key in by_step):
        rules = by_step[spec.key]
        reasons = [
            f"{r.id}: " + (r.description or " and ".join(describe(c) for c in r.conditions))
            for r in rules
        ]
        plan.append(
            PlannedStep(spec, [r.id for r in rules], reasons, step_fingerprint(spec, rules, facts))
        )
    return plan


def carried_approval(
    planned: PlannedStep, prior: Iterable[PriorApproval]
) -> PriorApproval | None:
    """The earlier approval that still stands for this step, if its inputs did not change."""
    for p in prior:
        if p.step_key == planned.spec.key and p.fingerprint == planned.fingerprint:
            return p
    return None


def seats_needed(group: GroupSpec) -> int:
    n = len(group.targets)
    if group.mode == "all":
        return n
    if group.mode == "any":
        return 1
    return group.quorum


def group_satisfied(group: GroupSpec, approved_seats: int) -> bool:
    return approved_seats >= seats_needed(group)


def sla_deadlines(
    opened_at: dt.datetime, remind_after_s: int | None, escalate_after_s: int | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    remind = opened_at + dt.timedelta(seconds=remind_after_s) if remind_after_s else None
    escalate = opened_at + dt.timedelta(seconds=escalate_after_s) if escalate_after_s else None
    return remind, escalate


def approval_hash(facts: QuoteFacts) -> str:
    """Hash of the approval-relevant fields of a quote version (not its title or ids)."""
    fields = {name: facts.fact(name) for name in FACTS}
    return _digest(fields)


# --- who may decide -----------------------------------------------------------------------

APPROVER_ROLES = ("sales_manager", "deal_desk", "finance", "legal", "cfo")
"""Roles whose holders decide approval tasks (a policy's queues are among these)."""
READ_ONLY_ROLES = ("auditor",)
"""Roles that read every approval but never decide one, whatever else their holder holds."""


def why_cannot_decide(*, user_id: int, roles: Iterable[str], active: bool = True,
                      queue_role: str | None = None, submitter_id: int | None = None,
                      owner_id: int | None = None) -> str | None:
    """Why this person could not decide a task (None if they could), as words that follow
    their name: "… is an auditor, and auditors never decide approvals".

    The one rule behind claiming, delegating a task and out-of-office windows: an active
    user with an approver role and no read-only one; for a role-queue task, in that queue;
    never the chain's submitter nor the quote's owner (nobody approves their own deal).
    """
    held = set(roles)
    if not active:
        return "is not an active user"
    if held.intersection(READ_ONLY_ROLES):
        return "is an auditor, and auditors never decide approvals"
    if not held.intersection(APPROVER_ROLES):
        return ("holds no approver role (" + ", ".join(r.replace("_", " ") for r in
                                                       APPROVER_ROLES) + ")")
    if queue_role is not None and queue_role not in held:
        return f"is not in the {queue_role.replace('_', ' ')} queue"
    if submitter_id is not None and user_id == submitter_id:
        return "submitted this quote, and nobody approves their own quote"
    if owner_id is not None and user_id == owner_id:
        return "owns this quote, and nobody approves their own quote"
    return None
