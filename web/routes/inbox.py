"""The approver's inbox and task pages; decisions without a page reload (htmx)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.audit import entity, entity_clause
from store.models import APPROVER_ROLES, ApprovalRequest, ApprovalTask, AuditEvent, User
from store.quote_items import items_at
from web.auth import CurrentUser
from web.deps import ClientDep, SessionDep, in_session
from web.errors import AppError, Conflict, Invalid, NotFound
from web.params import MAX_ID, TaskId, form_amount
from web.render import is_htmx, render
from web.services import delegations, health, library, proposals
from web.services import envelopes as envelope_service
from web.services import tasks as task_service
from web.services.tasks import VIEWS, InboxFilter, InboxRow, TaskRef
from workflows.messages import TaskResult, TaskState

router = APIRouter(include_in_schema=False)

PAGE_ROWS = 50  # soonest-due first; filters narrow the rest

VIEW_TITLES = {"all": "Everything for me", "mine": "Assigned to me", "queues": "My role queues",
               "claimed": "Claimed by me", "delegated": "Delegated to me"}


def _filter(view: str, queue: str | None, account: str | None, min_amount: str | None,
            max_amount: str | None) -> InboxFilter:
    if view not in VIEWS:
        raise Invalid(f"view must be one of {', '.join(VIEWS)}", field="view")
    return InboxFilter(view=view, queue=queue or None,
                       account=(account or "").strip() or None,
                       min_amount=form_amount(min_amount, "min_amount"),
                       max_amount=form_amount(max_amount, "max_amount"), limit=PAGE_ROWS)


@router.get("/inbox")
def inbox_page(request: Request, user: CurrentUser, session: SessionDep,
                     view: str = "all", queue: str | None = None, account: str | None = None,
                     min_amount: str | None = None, max_amount: str | None = None) -> Response:
    f = _filter(view, queue, account, min_amount, max_amount)
    return render(request, "inbox.html", _inbox_context(
        session, user, f, task_service.inbox(session, user, f),
        task_service.inbox_count(session, user), _raw(request), not is_htmx(request)),
        block="rows")


def _raw(request: Request) -> dict[str, str]:
    """The filters as typed, for the filter form."""
    return {k: request.query_params.get(k, "") for k in ("account", "min_amount", "max_amount")}


def _inbox_context(session: Session, user: User, f: InboxFilter, tasks: list[InboxRow],
                   count: int, raw: dict[str, str], whole_page: bool) -> dict[str, object]:
    """What the inbox template shows; the sections above the rows (envelopes to sign, library
    reviews due, proposal reviews, customer health alerts) only for the whole page: htmx
    swaps in the rows and counts alone."""
    return {"tasks": tasks, "f": f, "views": VIEW_TITLES, "count": count,
            "to_sign": envelope_service.awaiting_signature(session, user) if whole_page else [],
            "reviews_due": library.due_for_review(session, user) if whole_page else [],
            "proposal_reviews": proposals.waiting_for(session, user) if whole_page else [],
            "health_alerts": health.open_tasks(session, user) if whole_page else [],
            "queues": sorted(r for r in user.roles if r in APPROVER_ROLES), "raw": raw}


def inbox_filter(
    view: Annotated[str, Query(max_length=20)] = "all",
    queue: Annotated[str | None, Query(max_length=50)] = None,
    account: Annotated[str | None, Query(max_length=200)] = None,
    min_amount: Annotated[str | None, Query(max_length=30)] = None,
    max_amount: Annotated[str | None, Query(max_length=30)] = None,
) -> InboxFilter:
    return _filter(view, queue, account, min_amount, max_amount)


@router.get("/inbox/rows")
def inbox_rows(request: Request, user: CurrentUser, session: SessionDep,
               f: Annotated[InboxFilter, Depends(inbox_filter)],
               shown: Annotated[list[str] | None, Query(max_length=2 * PAGE_ROWS)] = None,
               shown_count: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None) -> Response:
    """The open inbox polls this every few seconds with the rows and count it shows: 204
    while they are current, else the rows again with the counts out of band. New tasks
    appear, tasks decided elsewhere go, and nothing is swapped (so nothing the person is
    doing is disturbed) while nothing changed."""
    tasks = task_service.inbox(session, user, f)
    count = task_service.inbox_count(session, user)
    if shown_count == count and sorted(shown or []) == sorted(t.key for t in tasks):
        return Response(status_code=204)
    return render(request, "inbox.html",
                  _inbox_context(session, user, f, tasks, count, _raw(request),
                                 not is_htmx(request)), block="refresh")


@router.get("/inbox/badge")
def inbox_badge(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    return render(request, "_badge.html", {"count": task_service.inbox_count(session, user)})


@dataclass(frozen=True)
class Panel:
    """The task's current state for its action panel: from the Update's result right after
    an action (the store follows a moment later), else from the store."""

    state: str
    assignee: str | None
    on_behalf_of: str | None
    queue_role: str | None
    claimed_by: str | None
    decided_by: str | None
    decided_at: dt.datetime | None
    comment: str | None

    @classmethod
    def of_row(cls, t: ApprovalTask) -> Panel:
        return cls(t.state, t.assignee.name if t.assignee else None,
                   t.on_behalf_of.name if t.on_behalf_of else None, t.queue_role,
                   t.claimed_by.name if t.claimed_by else None,
                   t.decided_by.name if t.decided_by else None, t.decided_at, t.comment)

    @classmethod
    def of_result(cls, t: TaskState) -> Panel:
        return cls(t.state, t.assignee_name if t.assignee_id is not None else None,
                   t.on_behalf_of_name or None, t.queue_role, t.claimed_by_name or None,
                   t.decided_by_name or None, t.decided_at, t.comment or None)


def _task_context(session: SessionDep, task: ApprovalTask, user: User,
                  result: TaskResult | None = None) -> dict[str, object]:
    req = session.get(ApprovalRequest, task.request_id)
    assert req is not None
    step = next((s for s in req.steps if s.key == task.step_key), None)
    siblings = session.scalars(select(ApprovalTask).where(
        ApprovalTask.request_id == req.id).order_by(ApprovalTask.created_at,
                                                    ApprovalTask.id)).unique().all()
    history = session.scalars(select(AuditEvent).where(
        entity_clause(entity("quote", task.quote_id))).order_by(AuditEvent.id)).all()
    ref = TaskRef(task.id, task.workflow_id, task.assignee_id, task.queue_role,
                  req.submitted_by_id, task.quote.owner_id)
    if result is None:
        panel, claimed_by = Panel.of_row(task), task.claimed_by_id
    else:
        panel, claimed_by = Panel.of_result(result.task), result.task.claimed_by_id
        ref = dataclasses.replace(ref, assignee_id=result.task.assignee_id)
    may = task_service.actions(ref, panel.state, claimed_by, user)
    delegates = delegations.eligible_people(
        session, exclude={user.id, req.submitted_by_id, task.quote.owner_id},
        queue_role=ref.queue_role if ref.assignee_id is None else None) if may.delegate else []
    return {"task": task, "req": req, "step": step, "siblings": siblings, "history": history,
            "p": panel, "may": may, "delegates": delegates,
            "items": items_at(session, task.quote_id, task.quote_version)}


def may_view_task(task: ApprovalTask, user: User) -> bool:
    return bool(user.roles.intersection((*APPROVER_ROLES, "auditor", "admin"))) or \
        task.quote.owner_id == user.id or task.assignee_id == user.id


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: TaskId, user: CurrentUser,
                    session: SessionDep) -> Response:
    task = task_service.get_task(session, task_id)
    if not may_view_task(task, user):
        raise NotFound(f"no task {task_id!r}")
    return render(request, "task.html", _task_context(session, task, user))


@router.post("/tasks/{task_id}/decision")
async def decide(request: Request, task_id: TaskId, user: CurrentUser, session: SessionDep,
                 client: ClientDep, decision: Annotated[str, Form()],
                 comment: Annotated[str, Form()] = "",
                 quote_version: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
                 origin: Annotated[str, Form()] = "task") -> Response:
    try:
        result = await task_service.decide(session, client, task_id, user, decision, comment,
                                           quote_version)
    except Conflict as e:
        if origin != "inbox":
            raise
        # Someone else decided first (or the chain ended): the row stops offering actions.
        return await in_session(session, _closed_row, request, user, task_id, e.message)
    if origin == "inbox":
        return await in_session(session, _decided_row, request, user, task_id, result)
    return await in_session(session, _panel, request, user, task_id, result,
                            f"You {_past(result.task.state)} this task.")


def _past(state: str) -> str:
    return {"approved": "approved", "rejected": "rejected",
            "changes_requested": "requested changes to"}.get(state, state.replace("_", " "))


def _count_without(session: Session, user: User, task_id: str) -> int:
    """The user's open tasks, not counting ``task_id``: the store follows a decision a
    moment later, so count as if it already had. Both reads share one snapshot, so the task
    is either counted and open, or neither."""
    count = task_service.inbox_count(session, user)
    state = session.scalar(select(ApprovalTask.state).where(ApprovalTask.id == task_id))
    return count - 1 if state == "open" else count


def _decided_row(session: Session, request: Request, user: User, task_id: str,
                 result: TaskResult) -> Response:
    return render(request, "inbox.html", {"done": result.task, "result": result,
                                          "count": _count_without(session, user, task_id)},
                  block="row_done")


def _closed_row(session: Session, request: Request, user: User, task_id: str,
                reason: str) -> Response:
    return render(request, "inbox.html", {"task_id": task_id, "reason": reason,
                                          "count": _count_without(session, user, task_id)},
                  block="row_closed", status_code=409)


def _panel(session: Session, request: Request, user: User, task_id: str, result: TaskResult,
           notice: str) -> Response:
    task = task_service.get_task(session, task_id)
    return render(request, "task.html", {**_task_context(session, task, user, result),
                                         "notice": notice}, block="panel")


@router.post("/tasks/{task_id}/claim")
async def claim(request: Request, task_id: TaskId, user: CurrentUser, session: SessionDep,
                client: ClientDep, release: Annotated[bool, Form()] = False) -> Response:
    result = await task_service.claim(session, client, task_id, user, claim=not release)
    notice = "Released back to the queue." if release else "Claimed: it is yours now."
    return await in_session(session, _panel, request, user, task_id, result, notice)


@router.post("/tasks/{task_id}/delegate")
async def delegate(request: Request, task_id: TaskId, user: CurrentUser, session: SessionDep,
                   client: ClientDep, to: Annotated[str, Form()],
                   comment: Annotated[str, Form()] = "") -> Response:
    result = await task_service.delegate(session, client, task_id, user, to, comment)
    return await in_session(session, _panel, request, user, task_id, result,
                            f"Delegated to {result.task.assignee_name}.")


@router.post("/inbox/bulk-approve")
async def bulk_approve(request: Request, user: CurrentUser, session: SessionDep,
                       client: ClientDep, task_ids: Annotated[list[str], Form()]) -> Response:
    if not task_ids:
        raise Invalid("select at least one task", field="task_ids")
    if len(task_ids) > 100:
        raise Invalid("approve at most 100 tasks at once", field="task_ids")
    approved, failed = [], []
    for task_id in task_ids:
        try:
            await task_service.decide(session, client, task_id, user, "approve")
            approved.append(task_id)
        except AppError as e:
            failed.append((task_id, e.message))
    response = render(request, "_flash.html", {
        "success": f"Approved {len(approved)} task{'s' if len(approved) != 1 else ''}."
        if approved else None,
        "errors": [f"{tid.rsplit('.', 4)[0]}: {msg}" for tid, msg in failed]})
    response.headers["HX-Trigger"] = "inbox-refresh"
    return response
