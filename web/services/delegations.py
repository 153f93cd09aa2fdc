"""Out-of-office windows, and who may stand in for whom.

While someone is away, new approval tasks for them go to their delegate (``resolve_seats``
in activities/approvals.py, which checks the delegate again for each chain). One use case for
the page, the API and anything else that makes or removes a window; the rule of who may
decide is ``workflows.rules.why_cannot_decide``, the same the workflow's validators apply.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Exists, exists, or_, select
from sqlalchemy.orm import Session

from store import audit
from store.audit import entity
from store.db import write_lock
from store.models import Delegation, User, UserRole
from store.who import Who
from web.errors import Forbidden, Invalid, NotFound
from web.services.tasks import active_user_by_email
from workflows.rules import APPROVER_ROLES, READ_ONLY_ROLES, why_cannot_decide

MAX_CANDIDATES = 500


@dataclass(frozen=True)
class Candidate:
    """Someone a picker may offer (plain values, for templates)."""

    id: int
    name: str
    email: str


def eligible_people(session: Session, *, exclude: Collection[int] = (),
                    queue_role: str | None = None) -> list[Candidate]:
    """Active people who could decide approval tasks (of ``queue_role``'s queue, if given),
    by name: the SQL narrows, the rule has the last word."""
    def holds(roles: Collection[str]) -> Exists:
        return exists().where(UserRole.user_id == User.id, UserRole.role.in_(roles))

    q = (select(User).where(User.is_active, holds(APPROVER_ROLES), ~holds(READ_ONLY_ROLES))
         .order_by(User.name, User.id).limit(MAX_CANDIDATES))
    if queue_role is not None:
        q = q.where(holds((queue_role,)))
    if exclude:
        q = q.where(User.id.not_in(exclude))
    return [Candidate(u.id, u.name, u.email) for u in session.scalars(q)
            if why_cannot_decide(user_id=u.id, roles=u.roles, queue_role=queue_role) is None]


def why_cannot_be_away(user: User) -> str | None:
    """Only someone who receives approval tasks has any to hand on while away."""
    why = why_cannot_decide(user_id=user.id, roles=user.roles, active=user.is_active)
    return None if why is None else (
        f"you don't receive approval tasks ({user.name} {why}), so there is nothing to hand "
        "on while you are away")


def windows_of(session: Session, user: User) -> list[Delegation]:
    """The user's own windows and those naming them as delegate, latest first."""
    return list(session.scalars(select(Delegation).where(or_(
        Delegation.user_id == user.id, Delegation.delegate_id == user.id))
        .order_by(Delegation.starts_at.desc())))


def create_window(session: Session, user: User, delegate_email: str, starts_at: dt.datetime,
                  ends_at: dt.datetime, *, field: str = "delegate") -> Delegation:
    """A window from ``starts_at`` to ``ends_at`` with its audit row, committed.

    Refused (403) for someone who receives no approval tasks (an auditor, a plain rep), and
    (422, on ``field``) for a delegate who could not decide them: inactive, no approver role,
    an auditor, or the user themself.
    """
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise Invalid("give times with a timezone, e.g. 2026-12-01T00:00:00Z",
                      field="starts_at")
    if ends_at <= starts_at:
        raise Invalid("the window must end after it starts", field="ends_at")
    if why := why_cannot_be_away(user):
        raise Forbidden(why)
    write_lock(session)
    delegate = active_user_by_email(session, delegate_email)
    if delegate is None:
        raise Invalid(f"no active user with email {delegate_email!r}", field=field)
    if delegate.id == user.id:
        raise Invalid("choose someone other than yourself", field=field)
    if why := why_cannot_decide(user_id=delegate.id, roles=delegate.roles,
                                active=delegate.is_active):
        raise Invalid(f"{delegate.name} can't stand in for you: {delegate.name} {why}",
                      field=field)
    window = Delegation(user_id=user.id, delegate_id=delegate.id, starts_at=starts_at,
                        ends_at=ends_at)
    session.add(window)
    session.flush()
    audit.append(session, event_key=f"delegation-{window.id}", actor=Who.user(user),
                 action="delegation.created", entity=entity("user", user.id),
                 data={"delegation": window.id, "delegate": delegate.email,
                       "delegate_id": delegate.id, "starts_at": starts_at.isoformat(),
                       "ends_at": ends_at.isoformat()})
    session.commit()
    return window


def delete_window(session: Session, user: User, window_id: int) -> None:
    """Remove one of the user's own windows, with its audit row; committed."""
    write_lock(session)
    window = session.get(Delegation, window_id)
    if window is None or window.user_id != user.id:
        raise NotFound("no such out-of-office window of yours")
    session.delete(window)
    audit.append(session, event_key=f"delegation-{window.id}-deleted", actor=Who.user(user),
                 action="delegation.deleted", entity=entity("user", user.id),
                 data={"delegation": window.id, "delegate_id": window.delegate_id})
    session.commit()
