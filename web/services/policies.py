"""Approval policies: load and validate YAML, save each change as a new version."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.converter import value_to_type

from store import audit
from store.audit import entity
from store.models import POLICY_ROLES, Policy, QuoteVersion, User
from store.who import Who
from web.errors import Invalid, NotFound
from workflows import rules
from workflows.messages import PolicySpec, QuoteFacts
from workflows.policy import PolicyError, parse_policy


def _lookup(session: Session) -> Any:
    def lookup(email: str) -> tuple[int, str] | None:
        u = session.scalar(select(User).where(func.lower(User.email) == email.lower(),
                                              User.is_active))
        return (u.id, u.name) if u else None
    return lookup


def parse_source(session: Session, source: str, version: int = 0) -> PolicySpec:
    """Parse YAML (JSON is YAML too) into a PolicySpec or raise Invalid listing every problem."""
    try:
        doc = yaml.safe_load(source)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise Invalid(f"the policy is not valid YAML{where}: {getattr(e, 'problem', e)}",
                      field="source") from None
    try:
        return parse_policy(doc, version=version, roles=POLICY_ROLES, lookup_user=_lookup(session))
    except PolicyError as e:
        raise Invalid("; ".join(e.problems), field="source") from None


def save_policy(session: Session, source: str, actor: User | None,
                process: str = "cli:policies") -> Policy:
    """Validate and store a new version (in the caller's transaction). Without a person
    (the CLI, the demo loader) the audit row names ``process``."""
    spec = parse_source(session, source)
    latest = session.scalar(select(func.max(Policy.version)).where(Policy.name == spec.name))
    version = (latest or 0) + 1
    spec = dataclasses.replace(spec, version=version)
    row = Policy(name=spec.name, version=version, source=source,
                 document=to_document(spec), created_by_id=actor.id if actor else None)
    session.add(row)
    session.flush()
    audit.append(session, event_key=f"policy-{spec.name}-v{version}",
                 actor=Who.user(actor) if actor else Who.system(process),
                 action="policy.saved", entity=entity("policy", spec.name),
                 data={"version": version, "steps": [s.key for s in spec.steps],
                       "rules": [r.id for r in spec.rules]})
    return row


def to_document(spec: PolicySpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def spec_of(row: Policy) -> PolicySpec:
    spec: PolicySpec = value_to_type(PolicySpec, row.document)
    return spec


def active_policy(session: Session, name: str | None = None) -> Policy:
    q = select(Policy).order_by(Policy.created_at.desc(), Policy.id.desc()).limit(1)
    if name:
        q = q.where(Policy.name == name)
    row = session.scalar(q)
    if row is None:
        raise Invalid("no approval policy is loaded yet: an admin must save one first",
                      field="policy")
    return row


def get_policy(session: Session, name: str, version: int) -> Policy:
    row = session.scalar(select(Policy).where(Policy.name == name, Policy.version == version))
    if row is None:
        raise NotFound(f"no policy {name!r} version {version}")
    return row


@dataclasses.dataclass(frozen=True)
class RuleCatch:
    rule_id: str
    description: str
    quotes: list[tuple[int, int, str]]  # (quote id, version, title)


def rule_catches(session: Session, spec: PolicySpec, days: int = 30) -> list[RuleCatch]:
    """Which submitted quote versions of the last ``days`` each rule would have caught."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    versions = session.scalars(select(QuoteVersion).where(QuoteVersion.submitted_at >= since)
                               .order_by(QuoteVersion.submitted_at.desc()).limit(5000)).all()
    facts = [(v, value_to_type(QuoteFacts, v.facts)) for v in versions]
    out = []
    for rule in spec.rules:
        caught = [(v.quote_id, v.version, f.title) for v, f in facts if rules.rule_matches(rule, f)]
        out.append(RuleCatch(rule.id, rule.description, caught))
    return out
