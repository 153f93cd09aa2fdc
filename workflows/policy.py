"""Reading an approval policy document (parsed YAML/JSON) into a PolicySpec.

Pure: every problem found is collected and raised together as :class:`PolicyError`, each
message naming where it is (``steps[2].groups[0].mode``) and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from workflows.messages import Condition, GroupSpec, PolicySpec, RuleSpec, StepSpec, Target
from workflows.rules import OPS, SUBJECT_FACTS, topological_order

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,60}$")
DURATION_RE = re.compile(r"^(\d+)\s*([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

UserLookup = Callable[[str], tuple[int, str] | None]


class PolicyError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_duration(value: Any) -> int:
    if isinstance(value, int) and value > 0:
        return value
    m = DURATION_RE.match(str(value).strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a duration like 30m, 8h or 2d")
    return int(m.group(1)) * UNITS[m.group(2)]


def parse_policy(
    doc: Any, *, version: int, roles: tuple[str, ...], lookup_user: UserLookup
) -> PolicySpec:
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise PolicyError(["the policy must be a mapping with name, steps and rules"])
    name = doc.get("name")
    if not isinstance(name, str) or not KEY_RE.match(name):
        problems.append("name: give the policy a short name (lower case letters, digits, - or _)")
        name = "policy"
    escalation_role = doc.get("escalation_role", "deal_desk")
    if escalation_role not in roles:
        problems.append(f"escalation_role: unknown role {escalation_role!r}; use one of {roles}")
    defaults = doc.get("defaults") or {}
    steps = _parse_steps(doc.get("steps"), defaults, roles, lookup_user, problems)
    rules = _parse_rules(doc.get("rules"), {s.key for s in steps}, problems)
    try:
        topological_order(steps)
    except ValueError as e:
        problems.append(f"steps: {e}; remove one of the 'after' links")
    if problems:
        raise PolicyError(problems)
    return PolicySpec(name, version, steps, rules, escalation_role)


def _sla(raw: dict[str, Any], defaults: dict[str, Any], where: str,
         problems: list[str]) -> tuple[int | None, int | None]:
    out: list[int | None] = []
    for field in ("remind_after", "escalate_after"):
        value = raw.get(field, defaults.get(field))
        if value is None:
            out.append(None)
            continue
        try:
            out.append(parse_duration(value))
        except ValueError as e:
            problems.append(f"{where}.{field}: {e}")
            out.append(None)
    return out[0], out[1]


def _parse_targets(raw: Any, where: str, roles: tuple[str, ...], lookup_user: UserLookup,
                   problems: list[str]) -> list[Target]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: list at least one approver, e.g. [{{role: finance}}]")
        return []
    targets = []
    for i, t in enumerate(raw):
        at = f"{where}[{i}]"
        if isinstance(t, dict) and "role" in t:
            if t["role"] not in roles:
                problems.append(f"{at}.role: unknown role {t['role']!r}; use one of {roles}")
            else:
                targets.append(Target(role=t["role"], label=str(t["role"]).replace("_", " ")))
        elif isinstance(t, dict) and "user" in t:
            found = lookup_user(str(t["user"]))
            if found is None:
                problems.append(f"{at}.user: no active user with email {t['user']!r}")
            else:
                targets.append(Target(user_id=found[0], label=found[1]))
        else:
            problems.append(f"{at}: write an approver as {{role: NAME}} or {{user: EMAIL}}")
    return targets


def _parse_group(raw: dict[str, Any], where: str, roles: tuple[str, ...],
                 lookup_user: UserLookup, problems: list[str]) -> GroupSpec | None:
    targets = _parse_targets(raw.get("approvers"), f"{where}.approvers", roles, lookup_user,
                             problems)
    mode = raw.get("mode", "all")
    quorum = 0
    if isinstance(mode, str) and re.fullmatch(r"\d+-of-\d+", mode):
        quorum, n = (int(x) for x in mode.split("-of-"))
        mode = "quorum"
        if n != len(raw.get("approvers") or []):
            problems.append(f"{where}.mode: {raw['mode']} but {len(targets)} approvers are listed")
    elif mode == "quorum":
        quorum = raw.get("quorum", 0)
    if mode not in ("all", "any", "quorum"):
        problems.append(f"{where}.mode: {mode!r} is not one of all, any, K-of-N")
        return None
    if mode == "quorum" and not (isinstance(quorum, int) and 1 <= quorum <= len(targets)):
        problems.append(f"{where}.quorum: must be between 1 and {len(targets)}")
        return None
    return GroupSpec(targets, mode, quorum)


def _parse_steps(raw: Any, defaults: dict[str, Any], roles: tuple[str, ...],
                 lookup_user: UserLookup, problems: list[str]) -> list[StepSpec]:
    if not isinstance(raw, list) or not raw:
        problems.append("steps: define at least one step")
        return []
    steps: list[StepSpec] = []
    seen: set[str] = set()
    for i, s in enumerate(raw):
        where = f"steps[{i}]"
        if not isinstance(s, dict):
            problems.append(f"{where}: a step is a mapping with key, name and approvers")
            continue
        key = s.get("key")
        if not isinstance(key, str) or not KEY_RE.match(key):
            problems.append(f"{where}.key: give the step a short key (lower case, digits, - or _)")
            continue
        if key in seen:
            problems.append(f"{where}.key: {key!r} is used twice")
        seen.add(key)
        if "groups" in s:
            raw_groups = s["groups"] if isinstance(s["groups"], list) else []
            if not raw_groups:
                problems.append(f"{where}.groups: list at least one group")
        else:
            raw_groups = [{"approvers": s.get("approvers"), "mode": s.get("mode", "any")}]
        groups = []
        for j, g in enumerate(raw_groups):
            gw = f"{where}.groups[{j}]" if "groups" in s else where
            parsed = _parse_group(g if isinstance(g, dict) else {}, gw, roles, lookup_user,
                                  problems)
            if parsed:
                groups.append(parsed)
        remind, escalate = _sla(s, defaults, where, problems)
        if remind and escalate and escalate <= remind:
            problems.append(f"{where}.escalate_after: must be later than remind_after")
        after = s.get("after") or []
        if not isinstance(after, list):
            after = [after]
        steps.append(StepSpec(key, str(s.get("name") or key), groups, [str(a) for a in after],
                              remind, escalate))
    keys = {s.key for s in steps}
    for i, s in enumerate(steps):
        for a in s.after:
            if a not in keys:
                problems.append(f"steps[{i}].after: no step with key {a!r}")
    return steps


def _parse_rules(raw: Any, step_keys: set[str], problems: list[str]) -> list[RuleSpec]:
    if not isinstance(raw, list) or not raw:
        problems.append("rules: define at least one rule")
        return []
    rules: list[RuleSpec] = []
    seen: set[str] = set()
    for i, r in enumerate(raw):
        where = f"rules[{i}]"
        if not isinstance(r, dict):
            problems.append(f"{where}: a rule is a mapping with id, when and add")
            continue
        rid = r.get("id")
        if not isinstance(rid, str) or not KEY_RE.match(rid):
            problems.append(f"{where}.id: give the rule a short id")
            continue
        if rid in seen:
            problems.append(f"{where}.id: {rid!r} is used twice")
        seen.add(rid)
        subject = r.get("subject", "quote")
        if subject not in SUBJECT_FACTS:
            problems.append(f"{where}.subject: {subject!r} is not one of "
                            f"{', '.join(SUBJECT_FACTS)}")
            continue
        facts = SUBJECT_FACTS[subject]
        conditions = []
        for j, c in enumerate(r.get("when") or []):
            cw = f"{where}.when[{j}]"
            if not isinstance(c, dict):
                problems.append(f"{cw}: write a condition as {{fact, op, value}}")
                continue
            fact, op = c.get("fact"), c.get("op")
            if fact not in facts:
                problems.append(f"{cw}.fact: unknown {subject} fact {fact!r}; use one of "
                                f"{sorted(facts)}")
                continue
            if op not in OPS[facts[fact]]:
                problems.append(f"{cw}.op: {op!r} does not apply to {fact}; use {OPS[facts[fact]]}")
                continue
            value = c.get("value")
            if facts[fact] == "number" and not isinstance(value, int | float):
                problems.append(f"{cw}.value: {fact} compares with a number")
                continue
            conditions.append(Condition(fact, op, value))
        adds = r.get("add") or []
        if not isinstance(adds, list) or not adds:
            problems.append(f"{where}.add: name the steps this rule adds")
            adds = []
        for a in adds:
            if a not in step_keys:
                problems.append(f"{where}.add: no step with key {a!r}")
        rules.append(RuleSpec(rid, str(r.get("description") or ""), conditions,
                              [str(a) for a in adds], subject))
    return rules
