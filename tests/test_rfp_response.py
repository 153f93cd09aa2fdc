"""RfpResponseWorkflow: its pure schedule, and on the real Temporal dev server with a worker:
an expert reminded before the due time and the owner told after it, once each; a recall
ends the workflow and its timers at once."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Replayer

from dealdesk.settings import Settings
from store.models import AuditEvent, OutboxMessage
from tests.support import eventually, replays, serve
from tests.test_rfp_files import ALASKA_FORMS
from tests.web_support import People, browser_session, seed_people, token_client
from web.services import rfp_tasks
from workflows.rfp_response import (
    Outcome,
    RfpResponseInput,
    RfpResponseResult,
    RfpResponseWorkflow,
    SmeTask,
    Step,
    schedule,
)

T0 = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def test_schedule_groups_steps_and_skips_done_and_answered() -> None:
    inp = RfpResponseInput(1, [SmeTask(10, 5, T0.isoformat()), SmeTask(11, 5, T0.isoformat()),
                               SmeTask(12, 6, (T0 + dt.timedelta(hours=2)).isoformat())],
                           remind_before_s=3600, escalate_after_s=1800)
    due = schedule(inp, {10, 11, 12}, set())
    assert [(d.at - T0, d.step, d.question_ids) for d in due] == [
        (dt.timedelta(hours=-1), Step.REMIND, (10, 11)),
        (dt.timedelta(minutes=30), Step.ESCALATE, (10, 11)),
        (dt.timedelta(hours=1), Step.REMIND, (12,)),
        (dt.timedelta(hours=2, minutes=30), Step.ESCALATE, (12,))]
    later = schedule(inp, {11, 12}, {(Step.REMIND, 11)})
    assert [(d.step, d.question_ids) for d in later][:2] == [(Step.ESCALATE, (11,)),
                                                           (Step.REMIND, (12,))]
    assert schedule(inp, set(), set()) == []


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


async def _result(client: Client, wid: str) -> RfpResponseResult:
    return await client.get_workflow_handle(wid, result_type=RfpResponseResult).result()


async def test_expert_reminded_then_owner_told_then_recall_ends_another(
        client: Client, worker: str, settings: Settings, people: People,
        sessions: sessionmaker[Session]) -> None:
    async with serve(settings) as url:
        rep = await token_client(url, people.rep)
        ids = []
        for n in range(2):
            r = await rep.post("/api/v1/rfps",
                               files={"file": (f"forms-{n}.docx", ALASKA_FORMS)})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
        r = await rep.post(f"/api/v1/rfps/{ids[0]}/assign", json={
            "assignee_id": people.legal.id, "due_at": due.isoformat(),
            "remind_before_hours": 2 / 3600, "escalate_after_hours": 1 / 3600})
        assert r.status_code == 200, r.text
        assigned = r.json()
        assert assigned["question_ids"]
        # A question the expert answers before the reminder is left out of it.
        first = assigned["question_ids"][0]
        r = await rep.put(f"/api/v1/rfps/{ids[0]}/questions/{first}/answer",
                          json={"text": "done"})
        assert r.status_code == 200
        result = await _result(client, assigned["workflow_id"])
        assert result.outcome == Outcome.ANSWERED  # nothing left to chase
        assert first not in result.reminded and set(result.reminded) == set(
            assigned["question_ids"][1:])
        assert result.escalated == result.reminded
        with sessions() as s:
            mails = list(s.scalars(select(OutboxMessage).where(
                OutboxMessage.message_key.startswith(f"rfp-{ids[0]}-"))))
            assert sorted(m.to_addr for m in mails) == sorted(
                [people.legal.email, people.rep.email])
            actions = list(s.scalars(select(AuditEvent.action).where(
                AuditEvent.entity == f"rfp:{ids[0]}")))
            assert {"rfp.assigned", "rfp.sme_remind", "rfp.sme_escalate"} <= set(actions)
        # Assigning twice is refused; an auditor may not assign; a past due time is refused.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        r = await rep.post(f"/api/v1/rfps/{ids[0]}/assign", json={
            "assignee_id": people.legal.id, "due_at": later.isoformat()})
        assert r.status_code == 409, r.text
        auditor = await token_client(url, people.auditor)
        r = await auditor.post(f"/api/v1/rfps/{ids[1]}/assign", json={
            "assignee_id": people.legal.id, "due_at": later.isoformat()})
        assert r.status_code == 403, r.text
        r = await rep.post(f"/api/v1/rfps/{ids[1]}/assign", json={
            "assignee_id": people.legal.id, "due_at": due.isoformat()})
        assert r.status_code == 422 and r.json()["field"] == "due_at", r.text

        # The second RFP: due in an hour, reminded half an hour before; recalled, its workflow
        # ends now, mailing nobody. (With the default day ahead, the reminder would be due at
        # once, racing the recall.)
        r = await rep.post(f"/api/v1/rfps/{ids[1]}/assign", json={
            "assignee_id": people.legal.id, "due_at": later.isoformat(),
            "remind_before_hours": 0.5})
        assert r.status_code == 200, r.text
        wid = r.json()["workflow_id"]
        await eventually(lambda: _started(client, wid))
        assert (await rep.post(f"/api/v1/rfps/{ids[1]}/recall")).status_code == 200
        result = await _result(client, wid)
        assert result.outcome == Outcome.RECALLED and not result.reminded
        with sessions() as s:
            assert not list(s.scalars(select(OutboxMessage).where(
                OutboxMessage.message_key.startswith(f"rfp-{ids[1]}-"))))
    assert rfp_tasks.workflow_id(settings, ids[1]) == wid
    # Both replay on today's code (the first is saved with DEALDESK_SAVE_HISTORY=FILE).
    await Replayer(workflows=[RfpResponseWorkflow]).replay_workflow(
        await client.get_workflow_handle(wid).fetch_history())
    await replays(client, assigned["workflow_id"], [RfpResponseWorkflow])


async def _started(client: Client, wid: str) -> bool:
    try:
        await client.get_workflow_handle(wid).describe()
    except Exception:
        return False
    return True


async def test_answering_every_expert_question_ends_the_chase_at_once(
        client: Client, worker: str, settings: Settings, people: People) -> None:
    """Due in three days, so only the ``answered`` signals (one per save, through the API and the
    page) can end the workflow within seconds, with nobody reminded."""
    async with serve(settings) as url:
        rep = await token_client(url, people.rep)
        r = await rep.post("/api/v1/rfps", files={"file": ("forms.docx", ALASKA_FORMS)})
        assert r.status_code == 201, r.text
        rfp_id = r.json()["id"]
        due = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)  # reminded in two
        r = await rep.post(f"/api/v1/rfps/{rfp_id}/assign", json={
            "assignee_id": people.legal.id, "due_at": due.isoformat()})
        assert r.status_code == 200, r.text
        assigned = r.json()
        first, *rest = assigned["question_ids"]
        browser, csrf = await browser_session(url, people.legal)
        r = await browser.post(f"/rfps/{rfp_id}/questions/{first}/answer",
                               headers={"X-CSRF-Token": csrf}, data={"text": "On the page."})
        assert r.status_code == 200, r.text
        for qid in rest:
            r = await rep.put(f"/api/v1/rfps/{rfp_id}/questions/{qid}/answer",
                              json={"text": f"Answer {qid}"})
            assert r.status_code == 200, r.text
        result = await asyncio.wait_for(_result(client, assigned["workflow_id"]), 30)
        assert result.outcome == Outcome.ANSWERED and not result.reminded
