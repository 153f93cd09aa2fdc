"""Approval tasks: the inbox queries, and acting on a task through its workflow's Updates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Executable, RowMapping, Select, and_, bindparam, func, select
from sqlalchemy.orm import Session, aliased, defaultload, lazyload
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from store.models import APPROVER_ROLES, Account, ApprovalRequest, ApprovalTask, Quote, User
from web.deps import in_session
from web.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from web.services.quotes import actor_of
from web.services.refusals import UPDATE_TIMEOUT, refusal_error, temporal_unavailable
from workflows import rules
from workflows.approval_chain import ApprovalChainWorkflow
from workflows.messages import ClaimInput, DecisionInput, DelegateInput, TaskResult

View = Literal["all", "mine", "queues", "claimed", "delegated"]
VIEWS: tuple[View, ...] = ("all", "mine", "queues", "claimed", "delegated")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class InboxFilter:
    view: View = "all"
    queue: str | None = None
    account: str | None = None
    min_amount: int | None = None  # minor units
    max_amount: int | None = None
    limit: int = 100


def _visible(user: User, view: View) -> list[ColumnElement[bool]]:
    """Disjoint conditions, one per index range: one per queue role rather than an IN, so
    each range comes off the index already in due order (ix_tasks_queue_lane/assignee_lane).
    """
    mine = ApprovalTask.assignee_id == user.id
    queues = [and_(ApprovalTask.queue_role == role, ApprovalTask.assignee_id.is_(None))
              for role in sorted(user.roles)]
    return {
        "all": [mine, *queues],
        "mine": [mine],
        "queues": queues,
        "claimed": [ApprovalTask.claimed_by_id == user.id],
        "delegated": [and_(mine, ApprovalTask.on_behalf_of_id.is_not(None))],
    }[view]


def _filtered(q: Select[Any, Any], f: InboxFilter) -> Select[Any, Any]:
    if f.queue:
        q = q.where(ApprovalTask.queue_role == f.queue)
    if f.account:
        q = q.join(Account, Account.id == ApprovalTask.account_id).where(
            Account.name.ilike(f"%{f.account}%"))
    if f.min_amount is not None:
        q = q.where(ApprovalTask.amount >= f.min_amount)
    if f.max_amount is not None:
        q = q.where(ApprovalTask.amount <= f.max_amount)
    return q


def inbox_queries(user: User, f: InboxFilter) -> list[Select[Any, Any]]:
    """The inbox's core: per visibility condition, the first ``f.limit`` open (id, due_at),
    soonest first and undated last. Each is one ordered index range: no sort, no row scan."""
    return [
        _filtered(select(ApprovalTask.id, ApprovalTask.due_at)
                  .where(ApprovalTask.state == "open", cond), f)
        .order_by(ApprovalTask.due_at.asc().nulls_last(), ApprovalTask.id).limit(f.limit)
        for cond in _visible(user, f.view)
    ]


# The pages and the API show a task's quote title, account and assignee/claimer names only:
# load just those columns (a quote's JSON columns cost more to decode than the rest of the
# page), don't join the quote's owner and account again, nor select each user's roles (all
# still lazy-load if something asks).
_PEOPLE = (User.id, User.name, User.email)
_INBOX_LOADING = (
    defaultload(ApprovalTask.quote).load_only(Quote.id, Quote.title, Quote.owner_id,
                                              Quote.version),
    defaultload(ApprovalTask.quote).lazyload(Quote.owner),
    defaultload(ApprovalTask.quote).lazyload(Quote.account),
    defaultload(ApprovalTask.account).load_only(Account.id, Account.name),
    lazyload(ApprovalTask.decided_by),  # open tasks are undecided
    defaultload(ApprovalTask.assignee).load_only(*_PEOPLE).lazyload(User.role_rows),
    defaultload(ApprovalTask.on_behalf_of).load_only(*_PEOPLE).lazyload(User.role_rows),
    defaultload(ApprovalTask.claimed_by).load_only(*_PEOPLE).lazyload(User.role_rows),
)


def inbox(session: Session, user: User, f: InboxFilter) -> list[ApprovalTask]:
    """Open tasks for ``user`` by due date (soonest first, undated last, then by id).

    Each visibility condition is its own indexed query (see :func:`inbox_queries`); their
    heads are merged here and only the page's tasks are loaded, so the page stays fast with
    many open tasks.
    """
    page = _inbox_page(session, user, f)
    if not page:
        return []
    rows = session.scalars(select(ApprovalTask).where(ApprovalTask.id.in_(page))
                           .options(*_INBOX_LOADING)).unique()
    by_id = {t.id: t for t in rows}
    return [by_id[i] for i in page if i in by_id]


def _inbox_page(session: Session, user: User, f: InboxFilter) -> list[str]:
    """The ids of the page's tasks, in inbox order: the heads of each visibility query,
    merged."""
    heads: dict[str, dt.datetime | None] = {}
    for part in inbox_queries(user, f):
        heads.update((r[0], r[1]) for r in session.execute(part))
    return sorted(heads, key=lambda i: (heads[i] is None, heads[i] or _EPOCH, i))[: f.limit]


def _inbox_rows_query() -> Executable:
    assignee, behalf, claimer = aliased(User), aliased(User), aliased(User)
    t = ApprovalTask
    query: Executable = (
        select(t.id, t.state, t.quote_id, t.quote_version, Account.name.label("account"),
               t.amount, t.currency, t.step_name.label("step"), t.queue_role.label("queue"),
               assignee.name.label("assignee"), behalf.name.label("on_behalf_of"),
               claimer.name.label("claimed_by"), t.decided_at, t.comment, t.due_at)
        .join(Account, Account.id == t.account_id)
        .outerjoin(assignee, assignee.id == t.assignee_id)
        .outerjoin(behalf, behalf.id == t.on_behalf_of_id)
        .outerjoin(claimer, claimer.id == t.claimed_by_id)
        .where(t.id.in_(bindparam("page", expanding=True))))
    return query


_INBOX_ROWS = _inbox_rows_query()  # built once: building it cost more than running it


def inbox_rows(session: Session, user: User, f: InboxFilter) -> list[RowMapping]:
    """The inbox as plain rows (one query, no ORM objects) with the columns the JSON API
    gives: building hundreds of mapped objects cost more than the SQL that found them."""
    page = _inbox_page(session, user, f)
    if not page:
        return []
    rows = session.execute(_INBOX_ROWS, {"page": page}).mappings()
    by_id = {r["id"]: r for r in rows}
    return [by_id[i] for i in page if i in by_id]


def inbox_count(session: Session, user: User) -> int:
    total = 0
    for cond in _visible(user, "all"):
        total += session.scalar(select(func.count()).select_from(ApprovalTask).where(
            ApprovalTask.state == "open", cond)) or 0
    return total


def get_task(session: Session, task_id: str) -> ApprovalTask:
    task = session.get(ApprovalTask, task_id)
    if task is None:
        raise NotFound(f"no task {task_id!r}")
    return task


@dataclass(frozen=True)
class TaskRef:
    """What acting on a task needs from the store: which workflow, whose task it is, and
    whose deal (its submitter and owner decide nothing on it)."""

    id: str
    workflow_id: str
    assignee_id: int | None
    queue_role: str | None = None
    submitter_id: int | None = None
    owner_id: int | None = None

    def why_cannot_decide(self, user_id: int, roles: Iterable[str],
                          active: bool = True) -> str | None:
        """``rules.why_cannot_decide`` for this task (see ``ApprovalChainWorkflow``: a task
        assigned to someone needs no queue role)."""
        return rules.why_cannot_decide(
            user_id=user_id, roles=roles, active=active,
            queue_role=self.queue_role if self.assignee_id is None else None,
            submitter_id=self.submitter_id, owner_id=self.owner_id)


def task_ref(session: Session, task_id: str) -> TaskRef:
    row = session.execute(
        select(ApprovalTask.workflow_id, ApprovalTask.assignee_id, ApprovalTask.queue_role,
               ApprovalRequest.submitted_by_id, Quote.owner_id)
        .join(ApprovalRequest, ApprovalRequest.id == ApprovalTask.request_id)
        .join(Quote, Quote.id == ApprovalTask.quote_id)
        .where(ApprovalTask.id == task_id)).first()
    if row is None:
        raise NotFound(f"no task {task_id!r}")
    return TaskRef(task_id, row.workflow_id, row.assignee_id, row.queue_role,
                   row.submitted_by_id, row.owner_id)


@dataclass(frozen=True)
class Actions:
    """What the task page offers this user; the workflow's validators decide for real."""

    decide: bool = False
    claim: bool = False
    release: bool = False
    delegate: bool = False


def actions(ref: TaskRef, state: str, claimed_by_id: int | None, user: User) -> Actions:
    if state != "open":
        return Actions()
    if ref.assignee_id is not None:
        mine = ref.assignee_id == user.id and user.id != ref.submitter_id
        return Actions(decide=mine, delegate=mine)
    if ref.queue_role not in user.roles or claimed_by_id not in (None, user.id):
        return Actions()
    if ref.why_cannot_decide(user.id, user.roles):
        return Actions(release=claimed_by_id == user.id)
    return Actions(decide=True, claim=claimed_by_id is None,
                   release=claimed_by_id == user.id, delegate=True)




async def _update(client: Client, task: TaskRef, update: object, arg: object) -> TaskResult:
    handle = client.get_workflow_handle(task.workflow_id)
    try:
        result: TaskResult = await handle.execute_update(  # type: ignore[call-overload]
            update, arg, rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as e:
        raise refusal_error(e) from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise Conflict("the approval chain for this task has ended") from None
        raise temporal_unavailable(e) from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise Unavailable("the approval service did not answer in time; reload in a moment "
                          "to see whether your decision went through") from None
    return result


async def decide(session: Session, client: Client, task_id: str, user: User, decision: str,
                 comment: str = "", quote_version: int | None = None) -> TaskResult:
    if decision not in ("approve", "reject", "request_changes"):
        raise Invalid("decision must be approve, reject or request_changes", field="decision")
    if decision != "approve" and not comment.strip():
        raise Invalid(f"a comment is required to {decision.replace('_', ' ')}", field="comment")
    if len(comment) > 4000:
        raise Invalid("the comment is longer than 4,000 characters", field="comment")
    task = await in_session(session, task_ref, task_id)
    _check_reachable(task, user)
    inp = DecisionInput(task.id, actor_of(user), decision, comment,  # type: ignore[arg-type]
                        quote_version)
    return await _update(client, task, ApprovalChainWorkflow.decide, inp)


async def claim(session: Session, client: Client, task_id: str, user: User,
                claim: bool = True) -> TaskResult:
    task = await in_session(session, task_ref, task_id)
    _check_reachable(task, user)
    if claim and task.assignee_id is None and task.queue_role in user.roles and (
            why := task.why_cannot_decide(user.id, user.roles)):
        raise Forbidden(f"you cannot claim this task: {user.name} {why}")
    return await _update(client, task, ApprovalChainWorkflow.claim,
                         ClaimInput(task.id, actor_of(user), claim))


async def delegate(session: Session, client: Client, task_id: str, user: User, to_email: str,
                   comment: str = "") -> TaskResult:
    """Hand the task to someone who could decide it (``rules.why_cannot_decide``): refused
    here, naming who and why, before the workflow's validator would."""
    task = await in_session(session, task_ref, task_id)
    _check_reachable(task, user)
    target = await in_session(session, active_user_by_email, to_email)
    if target is None:
        raise Invalid(f"no active user with email {to_email!r}", field="to")
    if target.id == user.id:
        raise Invalid("choose someone other than yourself", field="to")
    if why := task.why_cannot_decide(target.id, target.roles, target.is_active):
        raise Forbidden(f"the task cannot be delegated to {target.name}: {target.name} {why}",
                        field="to")
    return await _update(client, task, ApprovalChainWorkflow.delegate, DelegateInput(
        task.id, actor_of(user), target.id, target.name, comment,
        to_user_roles=sorted(target.roles)))


def active_user_by_email(session: Session, email: str) -> User | None:
    """The one lookup of a person by email (case-insensitive, active accounts only)."""
    return session.scalar(select(User).where(func.lower(User.email) == email.strip().lower(),
                                             User.is_active))


def _check_reachable(task: TaskRef, user: User) -> None:
    """Refuse early (without a round-trip) someone who could never act on this task.

    The workflow's validator remains the authority: this only spares it obvious cases.
    """
    if not user.roles.intersection(APPROVER_ROLES) and task.assignee_id != user.id:
        raise Forbidden("your role cannot act on approval tasks")


__all__ = ["VIEWS", "Actions", "InboxFilter", "actions", "claim", "decide", "delegate",
           "get_task", "inbox", "inbox_count", "inbox_queries", "task_ref"]
