"""Subject-matter experts on an RFP: the questions the library could not answer handed to
an expert with a due time, chased by RfpResponseWorkflow (workflows/rfp_response.py), which a
recall ends. The rest of the RFP's use cases are web/services/rfps.py."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client

from dealdesk.settings import Settings
from store import starts
from store.db import write_lock
from store.deals import step_parent
from store.models import User
from store.rfps import RfpQuestion
from web.errors import Conflict, Forbidden, Invalid
from web.services.rfps import (
    ANSWERED,
    SUGGEST_THRESHOLD,
    get_rfp,
    may_approve,
    may_write,
    record,
    require_editable,
    require_writer,
    utcnow,
)
from workflows.rfp_response import RfpResponseInput, RfpResponseWorkflow, SmeTask
from workflows.rfp_response import workflow_id as _workflow_id

MAX_AHEAD = dt.timedelta(days=366)
REMIND_BEFORE = dt.timedelta(days=1)
ESCALATE_AFTER = dt.timedelta(days=1)


def workflow_id(settings: Settings, rfp_id: int) -> str:
    return _workflow_id(settings.workflow_prefix, rfp_id)


def assign_smes(session: Session, settings: Settings, user: User, rfp_id: int,
                assignee_id: int, due_at: dt.datetime, *,
                remind_before: dt.timedelta = REMIND_BEFORE,
                escalate_after: dt.timedelta = ESCALATE_AFTER) -> list[RfpQuestion]:
    """Hand every question the library could not answer (unanswered, best suggestion under
    :data:`SUGGEST_THRESHOLD`) to a subject-matter expert, due at ``due_at``, and start the
    RFP's RfpResponseWorkflow (reminder before, escalation to the owner after), committed.
    Once per RFP (the workflow id is the RFP's). Returns the questions assigned."""
    require_writer(user)
    write_lock(session)
    rfp = get_rfp(session, user, rfp_id)
    if not may_approve(user, rfp):
        raise Forbidden(f"only its owner ({rfp.owner.name}), deal desk, legal or an admin "
                        "assigns this RFP's questions")
    require_editable(rfp)
    expert = session.get(User, assignee_id)
    if expert is None or not expert.is_active or not may_write(expert):
        raise Invalid(f"no active user {assignee_id} who may answer RFPs", field="assignee_id")
    if due_at.tzinfo is None or not utcnow() < due_at <= utcnow() + MAX_AHEAD:
        raise Invalid("due_at must be a time (with its time zone) within the next year",
                      field="due_at")
    if rfp.questions and any(q.assignee_id for q in rfp.questions):
        raise Conflict(f"RFP {rfp.id}'s questions were already assigned", field="assignee_id")
    chosen = [q for q in rfp.questions if q.status == "unanswered"
              and (q.top_score is None or q.top_score < SUGGEST_THRESHOLD)]
    if not chosen:
        raise Conflict("every question is answered or has a good library suggestion",
                       field="assignee_id")
    for q in chosen:
        q.assignee_id, q.due_at = expert.id, due_at
    record(session, user, rfp, "rfp.assigned",
           {"assignee_id": expert.id, "due_at": due_at.isoformat(),
            "question_ids": [q.id for q in chosen]}, key=f"rfp-{rfp.id}-assigned")
    tasks = [SmeTask(q.id, expert.id, due_at.isoformat()) for q in chosen]
    starts.enqueue(session, workflow_id(settings, rfp.id), RfpResponseWorkflow.__name__,
                   RfpResponseInput(rfp.id, tasks,
                                    int(remind_before.total_seconds()),
                                    int(escalate_after.total_seconds())),
                   settings.task_queue,
                   parent=step_parent(session, settings.workflow_prefix, rfp.deal_id))
    session.commit()
    return chosen


async def signal_answered(client: Client | None, settings: Settings, question: RfpQuestion
                          ) -> None:
    """Tell the RFP's workflow at once that an expert's question is answered: its reminder
    and escalation are dropped. Best effort, like :func:`signal_recall`: the workflow's
    activities check the store before anyone is mailed."""
    if client is None or question.assignee_id is None or question.status not in ANSWERED:
        return
    try:
        await client.get_workflow_handle(workflow_id(settings, question.rfp_id)).signal(
            RfpResponseWorkflow.answered, question.id)
    except Exception:
        return


async def signal_recall(client: Client | None, settings: Settings, rfp_id: int) -> None:
    """Tell the RFP's workflow (if any) at once that it was recalled: its timers end. Best
    effort: the workflow also finds the recall in the store at its next wake-up."""
    if client is None:
        return
    try:
        await client.get_workflow_handle(workflow_id(settings, rfp_id)).signal(
            RfpResponseWorkflow.recall)
    except Exception:
        return



def experts(session: Session) -> list[User]:
    """Active users who may answer RFPs, by name (the assignment form's choices)."""
    users = session.scalars(select(User).where(User.is_active).order_by(User.name))
    return [u for u in users if may_write(u)]
