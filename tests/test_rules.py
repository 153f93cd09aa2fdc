"""Pure unit tests of workflows/rules.py and workflows/policy.py (no Temporal, no store).

Covers: every condition operator; plan_chain ordering (also through an unselected
predecessor); step fingerprints (which fact changes re-open a step); all/any/K-of-N groups;
cycle detection; SLA deadlines; who may decide a task (and why not); and parse_policy's
problem messages, each naming its place.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from workflows import rules
from workflows.messages import (
    Condition,
    GroupSpec,
    PriorApproval,
    QuoteFacts,
    RuleSpec,
    StepSpec,
    Target,
)
from workflows.policy import PolicyError, parse_duration, parse_policy

ROLES = ("rep", "sales_manager", "deal_desk", "finance", "legal", "cfo")
USERS = {"cfo@x.example": (7, "Cee Eff")}


def facts(**over: Any) -> QuoteFacts:
    base: dict[str, Any] = dict(
        quote_id=1, version=1, title="Q", account_id=1, account_name="Acme", owner_id=1,
        currency="USD", total=8_500_000, list_total=10_000_000, discount_pct=15.0,
        margin_pct=60.0, term_months=12, nonstandard_terms=["net 90"],
        product_families=["core", "analytics"])
    base.update(over)
    return QuoteFacts(**base)


def parse(doc: dict[str, Any]) -> Any:
    return parse_policy(doc, version=1, roles=ROLES, lookup_user=USERS.get)


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as e:
        parse(doc)
    return e.value.problems


def step(key: str, *after: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "approvers": [{"role": "finance"}], "after": list(after), **extra}


def rule(rid: str, add: list[str], *when: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "when": list(when), "add": add}


def doc(steps: list[dict[str, Any]], rule_list: list[dict[str, Any]] | None = None
        ) -> dict[str, Any]:
    return {"name": "t", "steps": steps,
            "rules": rule_list or [rule("all", [s["key"] for s in steps])]}


# ------------------------------------------------------------------ conditions
@pytest.mark.parametrize(("fact", "op", "value", "expected"), [
    ("discount_pct", "gt", 15, False), ("discount_pct", "gt", 14.9, True),
    ("discount_pct", "gte", 15, True), ("discount_pct", "lt", 15, False),
    ("discount_pct", "lte", 15, True), ("discount_pct", "eq", 15, True),
    ("discount_pct", "ne", 15, False), ("total", "gte", 8_500_001, False),
    ("currency", "eq", "USD", True), ("currency", "ne", "USD", False),
    ("currency", "in", ["EUR", "USD"], True), ("currency", "in", ["EUR"], False),
    ("nonstandard_terms", "contains", "net 90", True),
    ("nonstandard_terms", "contains", "net 30", False),
    ("product_families", "any", ["hw", "analytics"], True),
    ("product_families", "any", ["hw"], False),
    ("nonstandard_terms", "not_empty", None, True), ("nonstandard_terms", "empty", None, False),
])
def test_condition_operators(fact: str, op: str, value: Any, expected: bool) -> None:
    assert rules.condition_holds(Condition(fact, op, value), facts()) is expected


def test_empty_list_and_unknown_operator() -> None:
    f = facts(nonstandard_terms=[])
    assert rules.condition_holds(Condition("nonstandard_terms", "empty", None), f)
    assert not rules.condition_holds(Condition("nonstandard_terms", "not_empty", None), f)
    with pytest.raises(ValueError, match="unknown operator 'between'"):
        rules.condition_holds(Condition("total", "between", [1, 2]), f)


# ------------------------------------------------------------------ plan_chain
def test_plan_chain_orders_by_after_and_keeps_only_selected_steps() -> None:
    # Declared backwards: c after b after a. Only a and c are selected (b's rule fails), and
    # c is declared first, yet it must still run after a through the unselected b.
    policy = parse(doc(
        [step("c", "b"), step("b", "a"), step("a"), step("z")],
        [rule("r-c", ["c"], {"fact": "discount_pct", "op": "gt", "value": 10}),
         rule("r-b", ["b"], {"fact": "discount_pct", "op": "gt", "value": 50}),
         rule("r-a", ["a"], {"fact": "term_months", "op": "lte", "value": 12}),
         rule("r-z", ["z"], {"fact": "currency", "op": "eq", "value": "EUR"})]))
    plan = rules.plan_chain(policy, facts())
    assert [p.spec.key for p in plan] == ["a", "c"]
    assert plan[1].rule_ids == ["r-c"]
    assert plan[1].reasons == ["r-c: discount_pct > 10"]


def test_plan_chain_merges_rules_and_uses_descriptions() -> None:
    policy = parse(doc([step("a")], [
        {**rule("one", ["a"], {"fact": "total", "op": "gt", "value": 0}),
         "description": "Any deal"},
        rule("two", ["a"], {"fact": "nonstandard_terms", "op": "not_empty"})]))
    [planned] = rules.plan_chain(policy, facts())
    assert planned.rule_ids == ["one", "two"]
    assert planned.reasons == ["one: Any deal", "two: nonstandard_terms is not empty"]


# ------------------------------------------------------------------ fingerprints
def _fingerprints(f: QuoteFacts) -> dict[str, str]:
    policy = parse(doc([step("disc"), step("terms")], [
        rule("d", ["disc"], {"fact": "discount_pct", "op": "gt", "value": 10}),
        rule("t", ["terms"], {"fact": "nonstandard_terms", "op": "not_empty"})]))
    return {p.spec.key: p.fingerprint for p in rules.plan_chain(policy, f)}


def test_fingerprint_follows_only_the_facts_a_steps_rules_read() -> None:
    before = _fingerprints(facts())
    assert _fingerprints(facts()) == before  # unchanged facts
    deeper = _fingerprints(facts(discount_pct=25.0))
    assert deeper["disc"] != before["disc"] and deeper["terms"] == before["terms"]
    unread = _fingerprints(facts(version=2, title="renamed", margin_pct=10.0, term_months=36,
                                 total=1, currency="EUR"))
    assert unread == before  # no rule reads these facts


def test_fingerprint_changes_with_the_step_definition() -> None:
    s = StepSpec("a", "A", [GroupSpec([Target(role="finance")])])
    r = [RuleSpec("r", "", [Condition("total", "gt", 0)], ["a"])]
    other = dataclasses.replace(s, groups=[GroupSpec([Target(role="legal")])])
    assert rules.step_fingerprint(s, r, facts()) != rules.step_fingerprint(other, r, facts())


def test_carried_approval_needs_the_same_step_and_fingerprint() -> None:
    policy = parse(doc([step("a")]))
    [planned] = rules.plan_chain(policy, facts())
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    same = PriorApproval("a", planned.fingerprint, "Bo", at, 1, "wf")
    assert rules.carried_approval(planned, [PriorApproval("b", planned.fingerprint, "Bo", at, 1,
                                                          "wf"), same]) is same
    assert rules.carried_approval(planned, [dataclasses.replace(same, fingerprint="x")]) is None


# ------------------------------------------------------------------ groups and SLA
@pytest.mark.parametrize(("mode", "quorum", "approved", "ok"), [
    ("all", 0, 2, False), ("all", 0, 3, True), ("any", 0, 0, False), ("any", 0, 1, True),
    ("quorum", 2, 1, False), ("quorum", 2, 2, True), ("quorum", 2, 3, True),
])
def test_group_satisfied(mode: Any, quorum: int, approved: int, ok: bool) -> None:
    group = GroupSpec([Target(role="finance"), Target(role="legal"), Target(user_id=7)], mode,
                      quorum)
    assert rules.group_satisfied(group, approved) is ok


def test_sla_deadlines() -> None:
    t0 = dt.datetime(2024, 5, 1, 9, tzinfo=dt.UTC)
    assert rules.sla_deadlines(t0, 60, 7200) == (t0 + dt.timedelta(minutes=1),
                                                  t0 + dt.timedelta(hours=2))
    assert rules.sla_deadlines(t0, None, None) == (None, None)


# ------------------------------------------------------------------ topological order
def test_topological_order_reports_only_the_steps_of_a_cycle() -> None:
    specs = [StepSpec(k, k, [], list(after)) for k, after in
             (("a", ["b"]), ("b", ["a"]), ("c", ["a"]), ("d", []))]
    with pytest.raises(ValueError, match="cycle") as e:
        rules.topological_order(specs)
    # c waits on the cycle but is not part of it, so removing its link would not help.
    assert str(e.value).endswith(": a → b → a")


def test_topological_order_ties_keep_declared_order() -> None:
    specs = [StepSpec(k, k, [], list(after)) for k, after in
             (("x", []), ("y", ["w"]), ("w", []), ("v", []))]
    assert [s.key for s in rules.topological_order(specs)] == ["x", "w", "v", "y"]


# ------------------------------------------------------------------ parse_policy
def test_parse_policy_reads_groups_modes_users_and_durations() -> None:
    policy = parse({
        "name": "main", "escalation_role": "finance", "defaults": {"remind_after": "1h"},
        "steps": [
            {"key": "s", "name": "Split", "escalate_after": "2d", "groups": [
                {"approvers": [{"role": "finance"}, {"role": "legal"}], "mode": "all"},
                {"approvers": [{"user": "cfo@x.example"}, {"role": "cfo"},
                               {"role": "legal"}], "mode": "2-of-3"}]},
            {"key": "t", "approvers": [{"role": "cfo"}], "after": "s",
             "remind_after": "1s", "escalate_after": "2s"}],
        "rules": [rule("r", ["s", "t"])]})
    s, t = policy.steps
    assert (policy.name, policy.escalation_role) == ("main", "finance")
    assert [g.mode for g in s.groups] == ["all", "quorum"] and s.groups[1].quorum == 2
    assert s.groups[1].targets[0] == Target(user_id=7, label="Cee Eff")
    assert (s.remind_after_s, s.escalate_after_s) == (3600, 172800)
    assert (t.after, t.remind_after_s, t.escalate_after_s, t.groups[0].mode) == (
        ["s"], 1, 2, "any")


@pytest.mark.parametrize(("value", "seconds"), [("1s", 1), ("30m", 1800), ("8 h", 28800),
                                                ("2d", 172800), (45, 45)])
def test_parse_duration(value: Any, seconds: int) -> None:
    assert parse_duration(value) == seconds


def test_a_cycle_is_reported_naming_its_steps() -> None:
    [problem] = problems(doc([step("a", "b"), step("b", "a")]))
    assert problem == ("steps: steps form a cycle (each runs after the next): a → b → a; "
                       "remove one of the 'after' links")


@pytest.mark.parametrize(("steps", "rule_list", "expected"), [
    ([{"key": "a", "approvers": [{"role": "janitor"}]}], None,
     "steps[0].approvers[0].role: unknown role 'janitor'"),
    ([{"key": "a", "approvers": [{"role": "cfo"}, {"user": "nobody@x.example"}]}], None,
     "steps[0].approvers[1].user: no active user with email 'nobody@x.example'"),
    ([{"key": "a", "groups": [{"approvers": [{"role": "cfo"}]},
                              {"approvers": [{"role": "x"}]}]}], None,
     "steps[0].groups[1].approvers[0].role: unknown role 'x'"),
    ([step("a"), step("b", "nope")], None, "steps[1].after: no step with key 'nope'"),
    ([step("a", remind_after="soon")], None,
     "steps[0].remind_after: 'soon' is not a duration like 30m, 8h or 2d"),
    ([step("a", escalate_after="0s")], None, "steps[0].escalate_after: '0s' is not a duration"),
    ([step("a", remind_after="2h", escalate_after="1h")], None,
     "steps[0].escalate_after: must be later than remind_after"),
    ([step("a", mode="4-of-3", approvers=[{"role": "cfo"}, {"role": "legal"},
                                          {"role": "finance"}])], None,
     "steps[0].quorum: must be between 1 and 3"),
    ([step("a", mode="0-of-1")], None, "steps[0].quorum: must be between 1 and 1"),
    ([step("a", mode="2-of-3")], None, "steps[0].mode: 2-of-3 but 1 approvers are listed"),
    ([step("a", mode="most")], None, "steps[0].mode: 'most' is not one of all, any, K-of-N"),
    ([step("a"), step("a")], None, "steps[1].key: 'a' is used twice"),
    ([step("a")], [rule("r", ["a", "ghost"])], "rules[0].add: no step with key 'ghost'"),
    ([step("a")], [rule("r", ["a"], {"fact": "colour", "op": "eq", "value": 1})],
     "rules[0].when[0].fact: unknown quote fact 'colour'"),
    ([step("a")], [rule("r", ["a"], {"fact": "total", "op": "eq", "value": 1},
                        {"fact": "discount_pct", "op": "contains", "value": 1})],
     "rules[0].when[1].op: 'contains' does not apply to discount_pct"),
    ([step("a")], [rule("r", ["a"], {"fact": "total", "op": "gt", "value": "lots"})],
     "rules[0].when[0].value: total compares with a number"),
    ([step("a")], [rule("r", ["a"]), rule("r", ["a"])], "rules[1].id: 'r' is used twice"),
])
def test_parse_policy_problem_names_its_place(steps: list[dict[str, Any]],
                                              rule_list: list[dict[str, Any]] | None,
                                              expected: str) -> None:
    found = problems(doc(steps, rule_list))
    assert any(p.startswith(expected) for p in found), found


def test_parse_policy_reports_every_problem_at_once() -> None:
    found = problems({"name": "Bad Name!", "escalation_role": "boss",
                      "steps": [step("a", remind_after="x")], "rules": []})
    assert [p.split(":")[0] for p in found] == [
        "name", "escalation_role", "steps[0].remind_after", "rules"]
    with pytest.raises(PolicyError, match="mapping"):
        parse_policy(["not", "a", "mapping"], version=1, roles=ROLES, lookup_user=USERS.get)


# --- who may decide (claims, delegations, out-of-office windows) ---------------------------

SUBMITTER, OWNER, ANYONE = 1, 2, 3


def cannot(user_id: int = ANYONE, *roles: str, active: bool = True,
           queue: str | None = None) -> str | None:
    return rules.why_cannot_decide(user_id=user_id, roles=roles, active=active,
                                   queue_role=queue, submitter_id=SUBMITTER, owner_id=OWNER)


def test_an_active_approver_may_decide() -> None:
    for role in rules.APPROVER_ROLES:
        assert cannot(ANYONE, role) is None
        assert cannot(ANYONE, role, queue=role) is None
    assert cannot(ANYONE, "rep", "sales_manager", queue="sales_manager") is None


def test_who_may_not_decide_and_why() -> None:
    assert cannot(ANYONE, "finance", active=False) == "is not an active user"
    assert cannot(ANYONE, "auditor") == "is an auditor, and auditors never decide approvals"
    # An auditor never decides, whatever else they hold.
    assert "auditor" in (cannot(ANYONE, "finance", "auditor", queue="finance") or "")
    assert (cannot(ANYONE, "rep") or "").startswith("holds no approver role")
    assert cannot(ANYONE, "admin") == cannot(ANYONE, "rep")
    assert cannot(ANYONE, "finance", queue="sales_manager") == \
        "is not in the sales manager queue"
    assert "submitted this quote" in (cannot(SUBMITTER, "sales_manager") or "")
    assert "owns this quote" in (cannot(OWNER, "sales_manager") or "")
    # Without a chain (an out-of-office window), only the person's roles count.
    assert rules.why_cannot_decide(user_id=SUBMITTER, roles=["cfo"]) is None

