"""Activities of the approval chain: projection, seat resolution, notification."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload, sessionmaker
from temporalio import activity

from activities.mail import Mailer
from store import audit
from store.audit import entity
from store.db import write_lock
from store.models import (
    ApprovalRequest,
    ApprovalStep,
    ApprovalTask,
    Delegation,
    Quote,
    QuoteVersion,
    User,
    UserRole,
)
from store.who import Who
from workflows.messages import (
    AuditRecord,
    ChainSnapshot,
    EscalationInput,
    Notice,
    ResolveSeatsInput,
    Seat,
    StepState,
    TaskState,
)
from workflows.rules import approval_hash, why_cannot_decide

QUOTE_STATUS = {
    "running": "pending_approval",
    "approved": "approved",
    "rejected": "rejected",
    "changes_requested": "changes_requested",
    "recalled": "draft",
    "cancelled": "draft",
}


class ApprovalActivities:
    def __init__(self, sessions: sessionmaker[Session], mailer: Mailer, base_url: str) -> None:
        self._sessions = sessions
        self._mailer = mailer
        self._base_url = base_url.rstrip("/")

    # Sent by the chain's projector after every change: must be quick and idempotent.
    @activity.defn(name="project_chain")
    def project_chain(self, snap: ChainSnapshot) -> None:
        with self._sessions() as s:
            write_lock(s)
            _project(s, snap)
            s.commit()

    @activity.defn(name="resolve_seats")
    def resolve_seats(self, inp: ResolveSeatsInput) -> list[Seat]:
        """One seat per target; a named user who is away is replaced by their delegate."""
        seats = []
        with self._sessions() as s:
            for t in inp.targets:
                if t.role is not None:
                    seats.append(Seat(queue_role=t.role, assignee_id=None,
                                      assignee_name=f"{t.role.replace('_', ' ')} queue"))
                    continue
                assert t.user_id is not None
                seats.append(self._seat_for_user(s, t.user_id, inp.at, inp.submitter_id,
                                                 inp.owner_id))
        return seats

    @activity.defn(name="resolve_escalations")
    def resolve_escalations(self, inp: EscalationInput) -> list[Seat]:
        """Each late task goes to its assignee's manager, or else to the escalation queue."""
        now = dt.datetime.now(dt.UTC)
        seats = []
        with self._sessions() as s:
            for task in inp.tasks:
                user = s.get(User, task.assignee_id) if task.assignee_id is not None else None
                if user is not None and user.manager_id is not None:
                    seats.append(self._seat_for_user(s, user.manager_id, now,
                                                     inp.submitter_id, inp.owner_id))
                else:
                    role = inp.escalation_role
                    seats.append(Seat(queue_role=role, assignee_id=None,
                                      assignee_name=f"{role.replace('_', ' ')} queue"))
        return seats

    def _seat_for_user(self, s: Session, user_id: int, at: dt.datetime,
                       submitter_id: int | None = None, owner_id: int | None = None) -> Seat:
        """The user's seat, or their delegate's while they are away, if the delegate could
        decide this chain's tasks (never its submitter or the quote's owner, never someone
        who lost their approver role since the window was made)."""
        user = s.get(User, user_id)
        if user is None:
            raise ValueError(f"user {user_id} no longer exists")
        away = s.scalar(select(Delegation).where(
            Delegation.user_id == user_id, Delegation.starts_at <= at, Delegation.ends_at > at,
        ).order_by(Delegation.id.desc()).limit(1))
        if away is not None and why_cannot_decide(
                user_id=away.delegate_id, roles=away.delegate.roles,
                active=away.delegate.is_active, submitter_id=submitter_id,
                owner_id=owner_id) is None:
            return Seat(queue_role=None, assignee_id=away.delegate_id,
                        assignee_name=away.delegate.name, on_behalf_of_id=user.id,
                        on_behalf_of_name=user.name)
        return Seat(queue_role=None, assignee_id=user.id, assignee_name=user.name)

    @activity.defn(name="notify")
    def notify(self, notices: list[Notice]) -> None:
        queued: list[int] = []
        with self._sessions() as s:
            for n in notices:
                users = list(s.scalars(select(User).where(User.id.in_(n.user_ids),
                                                          User.is_active)))
                if n.roles:
                    users += s.scalars(select(User).join(UserRole).where(
                        UserRole.role.in_(n.roles), User.is_active))
                body = n.body + (f"\n\nOpen: {self._base_url}{n.link}" if n.link else "")
                for u in {u.id: u for u in users}.values():
                    queued.append(self._mailer.queue(f"{n.key}:{u.id}", u.email, n.subject, body))
        for message_id in queued:
            self._mailer.deliver(message_id)


def _project(s: Session, snap: ChainSnapshot) -> None:
    facts = snap.facts
    req = s.scalar(select(ApprovalRequest)
                   .where(ApprovalRequest.workflow_id == snap.workflow_id)
                   .with_for_update())
    if req is None:
        req = ApprovalRequest(
            workflow_id=snap.workflow_id, quote_id=facts.quote_id,
            quote_version=facts.version, policy_name=snap.policy_name,
            policy_version=snap.policy_version, submitted_by_id=snap.submitted_by.user_id,
            status=snap.status, revision=0)
        s.add(req)
        s.flush()
        _freeze_version(s, snap)
    for ev in snap.events:
        audit.append(s, event_key=ev.key, actor=record_actor(ev), action=ev.action,
                     entity=entity("quote", facts.quote_id),
                     data={**ev.data, "workflow_id": snap.workflow_id}, at=ev.at)
    if snap.revision <= req.revision:
        return  # an older snapshot arriving late: its audit rows are in, state is not
    req.revision, req.status, req.completed_at = (
        snap.revision, snap.status, snap.completed_at)
    steps = {st.key: st for st in req.steps}
    for step in snap.steps:
        _upsert_step(req, steps.get(step.key), step)
    existing = {t.id: t for t in s.scalars(
        select(ApprovalTask).where(ApprovalTask.request_id == req.id)
        .options(lazyload("*")))}
    for task in snap.tasks:
        row = existing.get(task.id)
        if row is None:
            step_name = next(x.name for x in snap.steps if x.key == task.step_key)
            row = ApprovalTask(
                id=task.id, request_id=req.id, workflow_id=snap.workflow_id,
                quote_id=facts.quote_id, quote_version=facts.version,
                account_id=facts.account_id, amount=facts.total, currency=facts.currency,
                step_key=task.step_key, step_name=step_name,
                group_index=task.group_index, seat=task.seat, created_at=task.created_at)
            s.add(row)
        _copy_task(row, task)
    # A chain only moves the quote it was started for, and only while that version is still
    # waiting on it: a later fact (the deal won, the quote edited into a new version) wins
    # over a snapshot that arrives after it, so the projection never moves a quote backwards.
    quote = s.get(Quote, facts.quote_id, options=[lazyload("*")])
    if quote is not None and quote.version == facts.version \
            and quote.status == "pending_approval":
        quote.status = QUOTE_STATUS.get(snap.status, quote.status)


def _freeze_version(s: Session, snap: ChainSnapshot) -> None:
    """The submitted version's facts and hash, written with the chain's first projection."""
    facts = snap.facts
    if s.scalar(select(QuoteVersion.id).where(QuoteVersion.quote_id == facts.quote_id,
                                              QuoteVersion.version == facts.version)):
        return
    digest = approval_hash(facts)
    at = snap.events[0].at if snap.events else dt.datetime.now(dt.UTC)
    s.add(QuoteVersion(quote_id=facts.quote_id, version=facts.version,
                       facts=dataclasses.asdict(facts), facts_hash=digest,
                       submitted_by_id=snap.submitted_by.user_id,
                       submitted_at=at))
    submitter = Who("user", snap.submitted_by.user_id, name=snap.submitted_by.name)
    audit.append(s, event_key=f"{snap.workflow_id}#submitted", actor=submitter,
                 action="quote.submitted", entity=entity("quote", facts.quote_id),
                 data={"version": facts.version, "hash": digest,
                       "policy": f"{snap.policy_name} v{snap.policy_version}",
                       "workflow_id": snap.workflow_id},
                 at=at)


def record_actor(ev: AuditRecord) -> Who | str:
    """The record's structured actor (its email comes from the users table, in
    ``audit.append``); a record from before it existed is read from its label."""
    if ev.actor_kind == "system":
        return Who.system(ev.actor_process)
    if ev.actor_kind == "user":
        return Who("user", ev.actor_user_id, name=ev.actor_name)
    if ev.actor == "system":
        return Who.system("workflow:approval_chain")
    return ev.actor


def _upsert_step(req: ApprovalRequest, row: ApprovalStep | None, step: StepState) -> None:
    if row is None:
        row = ApprovalStep(key=step.key, name=step.name, position=step.position,
                           rule_ids=step.rule_ids, reasons=step.reasons,
                           fingerprint=step.fingerprint, state=step.state)
        req.steps.append(row)
    row.state = step.state
    row.carried_from = (
        {k: (v.isoformat() if isinstance(v, dt.datetime) else v)
         for k, v in dataclasses.asdict(step.carried_from).items()}
        if step.carried_from else None)
    row.opened_at, row.due_at, row.completed_at = step.opened_at, step.due_at, step.completed_at


def _copy_task(row: ApprovalTask, task: TaskState) -> None:
    row.queue_role, row.assignee_id = task.queue_role, task.assignee_id
    row.on_behalf_of_id, row.claimed_by_id = task.on_behalf_of_id, task.claimed_by_id
    row.escalated_from, row.state = task.escalated_from, task.state
    row.decided_by_id, row.decided_at = task.decided_by_id, task.decided_at
    row.comment, row.due_at, row.reminded_at = task.comment or None, task.due_at, task.reminded_at
