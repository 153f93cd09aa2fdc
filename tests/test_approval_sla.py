"""Reminders, escalation, delegation and who gets mail, on the real Temporal dev server.

With ``remind_after: 1s`` / ``escalate_after: 2s`` a step's open tasks get one reminder each
(outbox key ``<task>:reminder:<user id>``), then an ``.esc`` task sharing the seat goes to the
assignee's manager (named approver) or to the escalation role's queue (role approver);
deciding either closes the seat. Out-of-office windows and the ``delegate`` Update move
tasks with ``on_behalf_of``; only the step whose turn it is gets mail; ``notify`` retried
with the same notices queues nothing twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.approvals import ApprovalActivities
from activities.mail import Mailer
from dealdesk.settings import Settings
from store.models import AuditEvent, Delegation, User
from tests.chain_fixtures import Deal, outbox
from tests.support import eventually, load_policy, make_user
from web.errors import Conflict, Forbidden, Invalid
from web.services import tasks as task_service
from workflows.messages import Notice

SLA = "remind_after: 1s\n    escalate_after: 2s"
POLICY = """
name: sla
escalation_role: deal_desk
steps:
  - key: manager
    name: Sales manager
    approvers: [{{role: sales_manager}}]
    {sla}
  - key: named
    name: Named approver
    after: [manager]
    approvers: [{{user: {alice}}}]
    {sla}
  - key: desk
    name: Deal desk
    after: [named]
    approvers: [{{role: deal_desk}}]
rules:
  - {{id: discount, when: [{{fact: discount_pct, op: gt, value: 10}}], add: [manager]}}
  - {{id: long-term, when: [{{fact: term_months, op: gt, value: 36}}], add: [named]}}
  - {{id: deep, when: [{{fact: discount_pct, op: gt, value: 20}}], add: [desk]}}
"""
NAMED_ONLY = dict(net_amount=9_900_000, term_months=48)  # 1% off, four years
MANAGER_ONLY = dict(net_amount=8_500_000)  # 15% off
MANAGER_THEN_DESK = dict(net_amount=7_500_000)  # 25% off


@dataclass
class People:
    rep: User
    boss: User  # a sales manager, and Alice's manager
    mgr2: User
    alice: User
    dan: User
    desk: User


def people(sessions: sessionmaker[Session], sla: str) -> People:
    with sessions.begin() as s:
        boss = make_user(s, "Bea Boss", "sales_manager")
        p = People(rep=make_user(s, "Rita Rep", "rep"), boss=boss,
                   mgr2=make_user(s, "Max Manager", "sales_manager"),
                   alice=make_user(s, "Alice Approver", "cfo", manager=boss),
                   dan=make_user(s, "Dan Deputy", "cfo"),
                   desk=make_user(s, "Dee Desk", "deal_desk"))
        load_policy(s, POLICY.format(sla=sla, alice=p.alice.email))
        s.expunge_all()
    return p


@pytest.fixture
def fast(sessions: sessionmaker[Session]) -> People:
    return people(sessions, SLA)


@pytest.fixture
def slow(sessions: sessionmaker[Session]) -> People:
    return people(sessions, "")


@pytest.fixture
def deal(sessions: sessionmaker[Session], client: Client, settings: Settings, worker: str):
    def make(p: People, **fields: object) -> Deal:
        return Deal(sessions, client, settings, p.rep, **fields)
    return make


async def test_named_approver_is_reminded_then_escalated_to_manager(deal, fast: People) -> None:
    d = deal(fast, **NAMED_ONLY)
    await d.submit()
    [tid] = await d.tasks("named")
    await eventually(lambda: outbox(d.sessions, ":reminder:"))
    assert outbox(d.sessions, ":reminder:") == [
        (f"{tid}:reminder:{fast.alice.id}", fast.alice.email)]
    [original, esc] = await d.tasks("named", 2)
    assert (original, esc) == (tid, f"{tid}.esc")
    row, orig_row = d.task(esc), d.task(tid)
    assert (row.assignee_id, row.queue_role, row.escalated_from) == (fast.boss.id, None, tid)
    assert (row.group_index, row.seat) == (orig_row.group_index, orig_row.seat)
    assert orig_row.reminded_at is not None
    await eventually(lambda: outbox(d.sessions, ":escalated:") == [
        (f"{esc}:escalated:{fast.boss.id}", fast.boss.email)])

    assert await d.act(esc, fast.boss) == "approved"
    await d.status("approved")
    assert d.task(tid).state == "superseded"
    # Nobody else was reminded; the outcome went to the rep.
    assert {a for _, a in outbox(d.sessions, ":reminder:")} == {fast.alice.email}
    await eventually(lambda: outbox(d.sessions, ":outcome:") == [
        (f"{d.wid}:outcome:{fast.rep.id}", fast.rep.email)])


async def test_role_queue_escalates_to_the_escalation_role(deal, fast: People) -> None:
    d = deal(fast, **MANAGER_ONLY)
    await d.submit()
    [tid] = await d.tasks("manager")
    # One reminder row per member of the queue, nobody else.
    await eventually(lambda: len(outbox(d.sessions, ":reminder:")) == 2)
    assert sorted(outbox(d.sessions, ":reminder:")) == sorted([
        (f"{tid}:reminder:{fast.boss.id}", fast.boss.email),
        (f"{tid}:reminder:{fast.mgr2.id}", fast.mgr2.email)])
    [_, esc] = await d.tasks("manager", 2)
    row = d.task(esc)
    assert (row.queue_role, row.assignee_id, row.escalated_from) == ("deal_desk", None, tid)
    assert row.seat == d.task(tid).seat
    await eventually(lambda: outbox(d.sessions, ":escalated:") == [
        (f"{esc}:escalated:{fast.desk.id}", fast.desk.email)])

    # The original assignee queue may still decide: that closes the escalated copy too.
    assert await d.act(tid, fast.mgr2) == "approved"
    await d.status("approved")
    assert d.task(esc).state == "superseded"
    with d.sessions() as s, pytest.raises(Conflict, match=r"ended|no longer open"):
        await task_service.decide(s, d.client, esc, s.merge(fast.desk), "approve")


async def test_out_of_office_window_routes_new_tasks_to_the_delegate(
        deal, slow: People, sessions: sessionmaker[Session]) -> None:
    now = dt.datetime.now(dt.UTC)
    with sessions.begin() as s:
        s.add_all([  # an old window to someone else, then the current one to Dan
            Delegation(user_id=slow.alice.id, delegate_id=slow.desk.id,
                       starts_at=now - dt.timedelta(days=9), ends_at=now - dt.timedelta(days=2)),
            Delegation(user_id=slow.alice.id, delegate_id=slow.dan.id,
                       starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=1)),
        ])
    d = deal(slow, **NAMED_ONLY)
    await d.submit()
    [tid] = await d.tasks("named")
    with sessions() as s:
        row = task_service.get_task(s, tid)
        assert (row.assignee.name, row.on_behalf_of.name) == ("Dan Deputy", "Alice Approver")
        opened = s.scalar(select(AuditEvent).where(AuditEvent.action == "step.opened"))
        assert opened.data["tasks"] == [
            {"id": tid, "to": "Dan Deputy", "on_behalf_of": "Alice Approver"}]
    await eventually(lambda: outbox(sessions, ":assigned:") == [
        (f"{tid}:assigned:{slow.dan.id}", slow.dan.email)])

    assert await d.act(tid, slow.dan) == "approved"
    await d.status("approved")
    with sessions() as s:
        approved = s.scalar(select(AuditEvent).where(AuditEvent.action == "task.approved"))
        assert approved.actor == f"Dan Deputy <{slow.dan.email}>"
        assert approved.actor_user_id == slow.dan.id
        assert approved.data["on_behalf_of"] == "Alice Approver"


async def test_delegate_update_moves_a_task_to_another_user(
        deal, slow: People, sessions: sessionmaker[Session]) -> None:
    d = deal(slow, **NAMED_ONLY)
    await d.submit()
    [tid] = await d.tasks("named")
    with sessions() as s:
        alice = s.merge(slow.alice)
        with pytest.raises(Invalid, match="no active user"):
            await task_service.delegate(s, d.client, tid, alice, "nobody@test.example")
        with pytest.raises(Forbidden, match="Rita Rep holds no approver role"):
            await task_service.delegate(s, d.client, tid, alice, slow.rep.email)
        with pytest.raises(Forbidden, match="assigned to Alice"):
            await task_service.delegate(s, d.client, tid, s.merge(slow.dan), slow.desk.email)
        result = await task_service.delegate(s, d.client, tid, alice, slow.dan.email.upper(),
                                             "away Friday")
    assert (result.task.assignee_id, result.task.on_behalf_of_id) == (slow.dan.id, slow.alice.id)
    await eventually(lambda: (lambda row: (row.assignee_id, row.on_behalf_of_id, row.state))(
        d.task(tid)) == (slow.dan.id, slow.alice.id, "open"))
    await eventually(lambda: outbox(sessions, ":delegated-") == [
        (f"{tid}:delegated-{slow.dan.id}:{slow.dan.id}", slow.dan.email)])
    with sessions() as s, pytest.raises(Forbidden, match="assigned to Dan Deputy"):
        await task_service.decide(s, d.client, tid, s.merge(slow.alice), "approve")
    assert await d.act(tid, slow.dan) == "approved"
    await d.status("approved")


async def test_only_the_step_whose_turn_it_is_gets_mail(deal, slow: People) -> None:
    d = deal(slow, **MANAGER_THEN_DESK)
    await d.submit()
    [m] = await d.tasks("manager")
    await eventually(lambda: len(outbox(d.sessions)) == 2)
    assert sorted(outbox(d.sessions)) == sorted([
        (f"{m}:assigned:{slow.boss.id}", slow.boss.email),
        (f"{m}:assigned:{slow.mgr2.id}", slow.mgr2.email)])  # not the deal desk yet

    await d.act(m, slow.boss)
    [dd] = await d.tasks("desk")
    await eventually(lambda: outbox(d.sessions, f"{dd}:") == [
        (f"{dd}:assigned:{slow.desk.id}", slow.desk.email)])
    await d.act(dd, slow.desk)
    await d.status("approved")
    await eventually(lambda: len(outbox(d.sessions)) == 4)
    assert {a for _, a in outbox(d.sessions)} == {
        slow.boss.email, slow.mgr2.email, slow.desk.email, slow.rep.email}


def test_retried_notify_queues_each_message_once(sessions: sessionmaker[Session],
                                                 slow: People) -> None:
    activities = ApprovalActivities(sessions, Mailer(sessions, None), "http://dealdesk.test")
    # Dan is named and in the cfo role: still one message for him.
    notice = Notice(key="quote-1-v1.manager.0.0:reminder", subject="s", body="b",
                    user_ids=[slow.dan.id, slow.desk.id], roles=["cfo"], link="/tasks/x")
    activities.notify([notice])
    first = outbox(sessions)
    activities.notify([notice])
    activities.notify([notice])
    assert outbox(sessions) == first
    assert sorted(a for _, a in first) == sorted(
        [slow.alice.email, slow.dan.email, slow.desk.email])
    assert all(k == f"{notice.key}:{uid}" for (k, _), uid in zip(
        sorted(first), sorted([slow.alice.id, slow.dan.id, slow.desk.id]), strict=True))
