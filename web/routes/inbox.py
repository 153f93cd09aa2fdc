"""The approver's inbox and task pages; decisions without a page reload (htmx)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import APPROVER_ROLES, ApprovalRequest, ApprovalTask, AuditEvent, User
from web.auth import CurrentUser
from web.deps import ClientDep, SessionDep, in_session
from web.errors import AppError, Invalid, NotFound
from web.params import MAX_ID, TaskId, form_amount
from web.render import render
from web.services import configurator
from web.services import envelopes as envelope_service
from web.services import tasks as task_service
from web.services.tasks import VIEWS, InboxFilter
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
    tasks = task_service.inbox(session, user, f)
    return render(request, "inbox.html", {
        "tasks": tasks, "f": f, "views": VIEW_TITLES, "count": task_service.inbox_count(
            session, user), "to_sign": envelope_service.awaiting_signature(session, user),
        "queues": sorted(r for r in user.roles if r in APPROVER_ROLES),
        "raw": {"account": account or "", "min_amount": min_amount or "",
                "max_amount": max_amount or ""},
    }, block="rows")


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

    def can_act(self, user: User, assignee_id: int | None, claimed_by_id: int | None) -> bool:
        if self.state != "open":
            return False
        if assignee_id is not None:
            return assignee_id == user.id
        return self.queue_role in user.roles and claimed_by_id in (None, user.id)


def _task_context(session: SessionDep, task: ApprovalTask, user: User,
                  result: TaskResult | None = None) -> dict[str, object]:
    req = session.get(ApprovalRequest, task.request_id)
    assert req is not None
    step = next((s for s in req.steps if s.key == task.step_key), None)
    siblings = session.scalars(select(ApprovalTask).where(
        ApprovalTask.request_id == req.id).order_by(ApprovalTask.created_at,
                                                    ApprovalTask.id)).unique().all()
    history = session.scalars(select(AuditEvent).where(
        AuditEvent.entity == f"quote-{task.quote_id}").order_by(AuditEvent.id)).all()
    if result is None:
        panel, can_act = Panel.of_row(task), task_service.can_act(task, user)
    else:
        panel = Panel.of_result(result.task)
        can_act = panel.can_act(user, result.task.assignee_id, result.task.claimed_by_id)
    return {"task": task, "req": req, "step": step, "siblings": siblings, "history": history,
            "p": panel, "can_act": can_act,
            "items": configurator.items_at(session, task.quote_id, task.quote_version)}


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
    result = await task_service.decide(session, client, task_id, user, decision, comment,
                                       quote_version)
    if origin == "inbox":
        return await in_session(session, _decided_row, request, user, task_id, result)
    return await in_session(session, _panel, request, user, task_id, result,
                            f"You {_past(result.task.state)} this task.")


def _past(state: str) -> str:
    return {"approved": "approved", "rejected": "rejected",
            "changes_requested": "requested changes to"}.get(state, state.replace("_", " "))


def _decided_row(session: Session, request: Request, user: User, task_id: str,
                 result: TaskResult) -> Response:
    # The store follows the durable decision a moment later: count as if it already had.
    # Both reads share one snapshot, so the task is either counted and open, or neither.
    count = task_service.inbox_count(session, user)
    state = session.scalar(select(ApprovalTask.state).where(ApprovalTask.id == task_id))
    if state == "open":
        count -= 1
    return render(request, "inbox.html", {"done": result.task, "count": count,
                                          "status": result.chain_status}, block="row_done")


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
