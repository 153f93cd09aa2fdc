"""Approval tasks: the inbox queries, and acting on a task through its workflow's Updates."""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    DateTime,
    Executable,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    func,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from temporalio.client import (
    Client,
)

from store.models import APPROVER_ROLES, Account, ApprovalRequest, ApprovalTask, Quote, User
from web.deps import in_session
from web.errors import Forbidden, Invalid, NotFound
from web.services import health
from web.services.quotes import actor_of
from web.services.refusals import execute_update
from workflows import rules
from workflows.approval_chain import ApprovalChainWorkflow
from workflows.messages import ClaimInput, DecisionInput, DelegateInput, TaskResult

View = Literal["all", "mine", "queues", "claimed", "delegated"]
VIEWS: tuple[View, ...] = ("all", "mine", "queues", "claimed", "delegated")
_NEVER = dt.datetime.min  # any datetime: it only stands in for None, which sorts apart


@dataclass(frozen=True)
class InboxFilter:
    view: View = "all"
    queue: str | None = None
    account: str | None = None
    min_amount: int | None = None  # minor units
    max_amount: int | None = None
    limit: int = 100


# The inbox's statements are built once per shape (view, the user's roles, which filters are
# set) with the user, the filters' values and the limit as bound parameters: building them
# cost as much as running them.
_USER_ID = bindparam("user_id", type_=Integer)
_LIMIT = bindparam("limit", type_=Integer)


def _visible(roles: Iterable[str], view: View) -> list[ColumnElement[bool]]:
    """Disjoint conditions, one per index range: one per queue role rather than an IN, so
    each range comes off the index already in due order (ix_tasks_queue_lane/assignee_lane).
    The user's id is the ``user_id`` parameter.
    """
    mine = ApprovalTask.assignee_id == _USER_ID
    queues = [and_(ApprovalTask.queue_role == role, ApprovalTask.assignee_id.is_(None))
              for role in sorted(roles)]
    return {
        "all": [mine, *queues],
        "mine": [mine],
        "queues": queues,
        "claimed": [ApprovalTask.claimed_by_id == _USER_ID],
        "delegated": [and_(mine, ApprovalTask.on_behalf_of_id.is_not(None))],
    }[view]


def _filtered(q: Select[Any, Any], f: InboxFilter) -> Select[Any, Any]:
    """``f``'s filters, as parameters named after its fields (the account as a pattern)."""
    if f.queue:
        q = q.where(ApprovalTask.queue_role == bindparam("queue", type_=String))
    if f.account:
        q = q.join(Account, Account.id == ApprovalTask.account_id).where(
            Account.name.ilike(bindparam("account", type_=String)))
    if f.min_amount is not None:
        q = q.where(ApprovalTask.amount >= bindparam("min_amount", type_=BigInteger))
    if f.max_amount is not None:
        q = q.where(ApprovalTask.amount <= bindparam("max_amount", type_=BigInteger))
    return q


def _params(user: User, f: InboxFilter) -> dict[str, object]:
    """The values of the statements' parameters for ``user`` and ``f``."""
    params: dict[str, object] = {"user_id": user.id, "limit": f.limit}
    if f.queue:
        params["queue"] = f.queue
    if f.account:
        params["account"] = f"%{f.account}%"
    if f.min_amount is not None:
        params["min_amount"] = f.min_amount
    if f.max_amount is not None:
        params["max_amount"] = f.max_amount
    return params


def _shape(user: User, f: InboxFilter) -> tuple[tuple[str, ...], InboxFilter]:
    """What the statements depend on: the roles, the view and which filters are set."""
    return tuple(sorted(user.roles)), InboxFilter(
        f.view, "q" if f.queue else None, "a" if f.account else None,
        None if f.min_amount is None else 0, None if f.max_amount is None else 0, 0)


@functools.lru_cache(maxsize=512)
def _inbox_statements(roles: tuple[str, ...], f: InboxFilter) -> tuple[Select[Any, Any], ...]:
    return tuple(
        # due_at only orders the merge: its raw value does (without re-attaching UTC).
        _filtered(select(ApprovalTask.id, type_coerce(ApprovalTask.due_at, DateTime()))
                  .where(ApprovalTask.state == "open", cond), f)
        .order_by(ApprovalTask.due_at.asc().nulls_last(), ApprovalTask.id).limit(_LIMIT)
        for cond in _visible(roles, f.view))


def inbox_queries(user: User, f: InboxFilter) -> list[Select[Any, Any]]:
    """The inbox's core: per visibility condition, the first ``f.limit`` open (id, due_at),
    soonest first and undated last. Each is one ordered index range: no sort, no row scan."""
    params = _params(user, f)
    return [q.params(params) for q in _inbox_statements(*_shape(user, f))]


@dataclass(frozen=True, slots=True)
class InboxRow:
    """An open task as the inbox page lists it: plain values from one query (building mapped
    objects and their related users, quotes and accounts cost more than the SQL)."""

    id: str
    quote_id: int
    quote_version: int
    quote_title: str
    account: str
    step: str
    escalated_from: str | None
    amount: int
    currency: str
    due_at: dt.datetime | None
    queue: str | None
    assignee_id: int | None
    assignee: str | None
    on_behalf_of: str | None
    claimed_by_id: int | None
    claimed_by: str | None

    @property
    def key(self) -> str:
        """The row as the inbox shows it (the page tells its poll which it shows): who holds
        the task can change (a delegation, a claim) while it stays listed."""
        return f"{self.id}:{self.assignee_id or ''}:{self.claimed_by_id or ''}"


def _inbox_page_query() -> Executable:
    assignee, behalf, claimer = aliased(User), aliased(User), aliased(User)
    t = ApprovalTask
    query: Executable = (
        select(t.id, t.quote_id, t.quote_version, Quote.title, Account.name, t.step_name,
               t.escalated_from, t.amount, t.currency, t.due_at, t.queue_role,
               t.assignee_id, assignee.name, behalf.name, t.claimed_by_id, claimer.name)
        .join(Quote, Quote.id == t.quote_id)
        .join(Account, Account.id == t.account_id)
        .outerjoin(assignee, assignee.id == t.assignee_id)
        .outerjoin(behalf, behalf.id == t.on_behalf_of_id)
        .outerjoin(claimer, claimer.id == t.claimed_by_id)
        .where(t.id.in_(bindparam("page", expanding=True))))
    return query


_INBOX_PAGE = _inbox_page_query()  # built once, like _INBOX_ROWS below


def inbox(session: Session, user: User, f: InboxFilter) -> list[InboxRow]:
    """Open tasks for ``user`` by due date (soonest first, undated last, then by id).

    Each visibility condition is its own indexed query (see :func:`inbox_queries`, sent
    together as one statement); their heads are merged here and only the page's tasks are
    loaded, so the page stays fast with many open tasks.
    """
    page = _inbox_page(session, user, f)
    if not page:
        return []
    rows = session.connection().execute(_INBOX_PAGE, {"page": page}).all()
    by_id = {r[0]: InboxRow(*r) for r in rows}
    return [by_id[i] for i in page if i in by_id]


def _inbox_page(session: Session, user: User, f: InboxFilter) -> list[str]:
    """The ids of the page's tasks, in inbox order: the heads of each visibility query,
    merged."""
    rows = session.connection().execute(_inbox_heads(*_shape(user, f)), _params(user, f))
    heads: dict[str, dt.datetime | None] = dict(rows.all())
    return sorted(heads, key=lambda i: (heads[i] is None, heads[i] or _NEVER, i))[: f.limit]


@functools.lru_cache(maxsize=512)
def _inbox_heads(roles: tuple[str, ...],
                 f: InboxFilter) -> Select[Any, Any] | CompoundSelect[Any, Any]:
    """:func:`inbox_queries` as one statement (one round trip): their results side by side,
    each still its own ordered index range."""
    parts = _inbox_statements(roles, f)
    if len(parts) == 1:
        return parts[0]
    return union_all(*(select(part.subquery()) for part in parts))


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


def inbox_rows(session: Session, user: User, f: InboxFilter) -> list[dict[str, Any]]:
    """The inbox as plain dicts (one query, no ORM objects) with the columns the JSON API
    gives: building hundreds of mapped objects cost more than the SQL that found them."""
    page = _inbox_page(session, user, f)
    if not page:
        return []
    result = session.connection().execute(_INBOX_ROWS, {"page": page})
    keys = tuple(result.keys())
    by_id = {r[0]: dict(zip(keys, r, strict=True)) for r in result.all()}
    return [by_id[i] for i in page if i in by_id]


def inbox_count(session: Session, user: User) -> int:
    """How many open tasks the user sees: the approval tasks (one statement adding one count
    per visibility condition, each counting its own index range) and the customer health
    alerts waiting for them (the inbox lists both)."""
    approvals = session.connection().scalar(_count_statement(tuple(sorted(user.roles))),
                                            {"user_id": user.id}) or 0
    return approvals + health.open_task_count(session, user)


@functools.lru_cache(maxsize=256)
def _count_statement(roles: tuple[str, ...]) -> Select[Any, Any]:
    counts = [select(func.count()).select_from(ApprovalTask)
              .where(ApprovalTask.state == "open", cond).scalar_subquery()
              for cond in _visible(roles, "all")]
    return select(functools.reduce(operator.add, counts))


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
    result: TaskResult = await execute_update(
        client, task.workflow_id, update, arg,
        ended="the approval chain for this task has ended", service="approval service")
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


__all__ = ["VIEWS", "Actions", "InboxFilter", "InboxRow", "actions", "claim", "decide", "delegate",
           "get_task", "inbox", "inbox_count", "inbox_queries", "task_ref"]
