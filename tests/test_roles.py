"""Role boundaries on approval tasks, through the live app and the real workflow.

Only someone who could decide a task may claim it or have it delegated to them
(``workflows.rules.why_cannot_decide``): never an auditor, a peer rep, the quote's submitter,
or someone outside the task's queue. The web tier refuses early, naming who and why; the
workflow's validators refuse the same when called directly (an old or buggy caller). Out-of-
office windows follow the same rule on both sides, and a window whose delegate submitted
the quote leaves the seat with the approver. Ten parallel attempts land exactly the eligible
ones, with no 5xx.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.approvals import ApprovalActivities
from activities.mail import Mailer
from dealdesk.settings import Settings
from store import audit
from store.models import APPROVER_ROLES, ROLES, AuditEvent, Delegation, User
from store.who import Who
from tests.chain_fixtures import Deal
from tests.support import eventually, make_user, replays
from tests.web_support import People, browser_session, quote_body, seed_people, token_client
from web.services import delegations
from workflows import rules
from workflows.approval_chain import NOT_ALLOWED, ApprovalChainWorkflow
from workflows.messages import Actor, ClaimInput, DelegateInput, ResolveSeatsInput, Target


@dataclass
class Cast:
    p: People
    peer: User  # another rep
    sam: User  # a rep who is also a sales manager: submits, and could approve others' quotes
    mgr3: User


@pytest.fixture
def cast(sessions: sessionmaker[Session]) -> Cast:
    p = seed_people(sessions)
    with sessions.begin() as s:
        c = Cast(p, make_user(s, "Pete Peer", "rep"),
                 make_user(s, "Sam Seller", "rep", "sales_manager"),
                 make_user(s, "Mel Manager", "sales_manager"))
        s.expunge_all()
    return c


def test_the_store_uses_the_workflows_approver_roles() -> None:
    assert APPROVER_ROLES == rules.APPROVER_ROLES
    assert set(rules.APPROVER_ROLES) | set(rules.READ_ONLY_ROLES) <= set(ROLES)


async def _sams_task(live_url: str, c: Cast) -> tuple[int, str, httpx.AsyncClient]:
    """Sam's quote (20% off) submitted; its sales-manager queue task. Returns Sam's client."""
    sam = await token_client(live_url, c.sam)
    r = await sam.post("/api/v1/quotes", json=quote_body(c.p.account_id, title="Sam's deal"))
    assert r.status_code == 201, r.text
    qid = r.json()["id"]
    assert (await sam.post(f"/api/v1/quotes/{qid}/submit")).status_code == 202

    async def task() -> str | None:
        chains = (await sam.get(f"/api/v1/quotes/{qid}/approvals")).json()
        return next((t["id"] for ch in chains for t in ch["tasks"]
                     if t["state"] == "open"), None)

    return qid, await eventually(task, timeout=30, interval=0.1), sam


async def test_delegating_and_claiming_only_to_those_who_could_decide(
        live_url: str, cast: Cast, sessions: sessionmaker[Session]) -> None:
    qid, tid, sam = await _sams_task(live_url, cast)
    mgr = await token_client(live_url, cast.p.manager)
    refused = [
        (cast.p.auditor, "is an auditor, and auditors never decide approvals"),
        (cast.peer, "holds no approver role"),
        (cast.p.rep, "holds no approver role"),
        (cast.sam, "submitted this quote, and nobody approves their own quote"),
        (cast.p.finance, "is not in the sales manager queue"),
    ]
    for user, why in refused:
        r = await mgr.post(f"/api/v1/tasks/{tid}/delegate", json={"to": user.email})
        assert r.status_code == 403, (user.name, r.text)
        assert r.json()["field"] == "to"
        assert r.json()["detail"].startswith(
            f"the task cannot be delegated to {user.name}: {user.name} {why}")
    r = await mgr.post(f"/api/v1/tasks/{tid}/delegate", json={"to": cast.p.manager.email})
    assert r.status_code == 422 and r.json()["field"] == "to"

    # Sam holds the queue's role, but it is his own quote: no claim, no decision.
    r = await sam.post(f"/api/v1/tasks/{tid}/claim")
    assert r.status_code == 403 and "Sam Seller submitted this quote" in r.json()["detail"]
    r = await sam.post(f"/api/v1/tasks/{tid}/decision", json={"decision": "approve"})
    assert r.status_code == 403 and "submitted this quote" in r.json()["detail"]

    # The page offers Sam nothing; the manager a picker of the eligible only.
    page = await _task_page(live_url, cast.sam, tid)
    assert "Claim</button>" not in page and "Delegate…" not in page
    assert "it is your own quote" in page
    page = await _task_page(live_url, cast.p.manager, tid)
    assert "Claim</button>" in page
    offered = re.findall(r'<option value="([^"]+)">', page)
    assert sorted(offered) == sorted([cast.p.manager2.email, cast.mgr3.email])
    page = await _task_page(live_url, cast.p.auditor, tid)
    assert "Claim</button>" not in page and "auditors read only" in page

    r = await mgr.post(f"/api/v1/tasks/{tid}/delegate",
                       json={"to": cast.p.manager2.email, "comment": "I'm out"})
    assert r.status_code == 200, r.text
    await eventually(lambda: _assignee(sessions, tid) == cast.p.manager2.id)
    with sessions() as s:
        row = s.scalar(select(AuditEvent).where(AuditEvent.action == "task.delegated"))
        assert row is not None and row.entity == f"quote:{qid}"
        assert audit.who_of(row) == Who("user", cast.p.manager.id, cast.p.manager.email,
                                        "Mo Manager")
        assert row.data["to_user_id"] == cast.p.manager2.id
    for c in (mgr, sam):
        await c.aclose()


async def _task_page(live_url: str, user: User, task_id: str) -> str:
    browser, _ = await browser_session(live_url, user)
    try:
        r = await browser.get(f"/tasks/{task_id}")
        assert r.status_code == 200, r.text
        return r.text
    finally:
        await browser.aclose()


def _assignee(sessions: sessionmaker[Session], task_id: str) -> int | None:
    from store.models import ApprovalTask

    with sessions() as s:
        task = s.get(ApprovalTask, task_id)
        return task.assignee_id if task else None


async def test_the_workflow_validators_refuse_directly(
        client: Client, settings: Settings, worker: str, cast: Cast,
        sessions: sessionmaker[Session]) -> None:
    """What an old or buggy caller sends straight to the workflow is refused there too, and
    nothing enters history."""
    d = Deal(sessions, client, settings, cast.sam, net_amount=8_000_000)
    await d.submit()
    [tid] = await d.tasks("manager")
    handle = client.get_workflow_handle(d.wid)
    mgr = Actor(cast.p.manager.id, "Mo Manager", ["sales_manager"])
    attempts = {
        "auditor": DelegateInput(tid, mgr, cast.p.auditor.id, "Aud Itor",
                                 to_user_roles=["auditor", "sales_manager"]),
        "no approver role": DelegateInput(tid, mgr, cast.peer.id, "Pete Peer",
                                          to_user_roles=["rep"]),
        "no roles given (an old caller)": DelegateInput(tid, mgr, cast.p.manager2.id,
                                                        "Mia Manager"),
        "submitted": DelegateInput(tid, mgr, cast.sam.id, "Sam Seller",
                                   to_user_roles=["rep", "sales_manager"]),
        "queue": DelegateInput(tid, mgr, cast.p.finance.id, "Fay Finance",
                               to_user_roles=["finance"]),
    }
    for label, inp in attempts.items():
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ApprovalChainWorkflow.delegate, inp)
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == NOT_ALLOWED, label
        assert "cannot be delegated to" in cause.message, label
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ApprovalChainWorkflow.claim, ClaimInput(
            tid, Actor(cast.sam.id, "Sam Seller", ["rep", "sales_manager"])))
    assert "Sam Seller submitted this quote" in str(refused.value.cause)
    history = await handle.fetch_history()
    assert not [e for e in history.events if e.HasField(
        "workflow_execution_update_accepted_event_attributes")]
    done = await handle.execute_update(ApprovalChainWorkflow.delegate, DelegateInput(
        tid, mgr, cast.p.manager2.id, "Mia Manager", to_user_roles=["sales_manager"]))
    assert done.task.assignee_id == cast.p.manager2.id
    await d.act(tid, cast.p.manager2)
    [fin] = await d.tasks("finance")
    await d.act(fin, cast.p.finance)
    await d.status("approved")
    await replays(client, d.wid, [ApprovalChainWorkflow])


async def test_who_may_make_an_out_of_office_window(live_url: str, cast: Cast,
                                                    sessions: sessionmaker[Session]) -> None:
    span = {"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-08T00:00:00Z"}
    for user in (cast.p.auditor, cast.p.rep):
        api = await token_client(live_url, user)
        r = await api.post("/api/v1/delegations", json={"delegate": cast.p.manager.email,
                                                        **span})
        assert r.status_code == 403 and "you don't receive approval tasks" in r.text
        await api.aclose()
    browser, csrf = await browser_session(live_url, cast.p.auditor)
    page = await browser.get("/away")
    assert "You can't add a window" in page.text and 'name="delegate_email"' not in page.text
    r = await browser.post("/away", data={"csrf_token": csrf, "starts": "2030-01-01",
                                          "ends": "2030-01-07",
                                          "delegate_email": cast.p.manager.email})
    assert r.status_code == 403 and "auditors never decide approvals" in r.text
    await browser.aclose()

    mgr = await token_client(live_url, cast.p.manager)
    for email, why in ((cast.p.auditor.email, "is an auditor"),
                       (cast.p.manager.email, "someone other than yourself"),
                       (cast.peer.email, "holds no approver role"),
                       ("nobody@test.example", "no active user")):
        r = await mgr.post("/api/v1/delegations", json={"delegate": email, **span})
        assert r.status_code == 422 and r.json()["field"] == "delegate", email
        assert why in r.json()["detail"], email
    r = await mgr.post("/api/v1/delegations", json={"delegate": cast.sam.email, **span})
    assert r.status_code == 201, r.text
    window = r.json()["id"]

    browser, csrf = await browser_session(live_url, cast.p.manager)
    page = (await browser.get("/away")).text
    offered = set(re.findall(r'<option value="([^"]+)">', page))
    assert offered == {cast.p.manager2.email, cast.p.finance.email, cast.p.legal.email,
                       cast.sam.email, cast.mgr3.email}
    r = await browser.post("/away", data={"csrf_token": csrf, "starts": "2030-02-01",
                                          "ends": "2030-02-07",
                                          "delegate_email": cast.p.auditor.email})
    assert r.status_code == 422 and "Aud Itor can&#39;t stand in for you" in r.text
    await browser.aclose()

    assert (await mgr.delete(f"/api/v1/delegations/{window}")).status_code == 204
    assert (await mgr.delete(f"/api/v1/delegations/{window}")).status_code == 404
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action.startswith("delegation."))
                         .order_by(AuditEvent.id)).all()
        assert [(r.action, r.entity, r.actor_user_id) for r in rows] == [
            ("delegation.created", f"user:{cast.p.manager.id}", cast.p.manager.id),
            ("delegation.deleted", f"user:{cast.p.manager.id}", cast.p.manager.id)]
        assert rows[0].data["delegate_id"] == cast.sam.id
    await mgr.aclose()


def test_a_delegate_who_submitted_the_quote_leaves_the_seat_with_the_approver(
        cast: Cast, sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        now = dt.datetime.now(dt.UTC)
        delegations.create_window(s, s.merge(cast.p.finance), cast.sam.email,
                                  now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    seats = ApprovalActivities(sessions, Mailer(sessions, None), "http://dealdesk.test")
    named = [Target(user_id=cast.p.finance.id)]
    [own] = seats.resolve_seats(ResolveSeatsInput(named, now, submitter_id=cast.sam.id,
                                                  owner_id=cast.sam.id))
    assert (own.assignee_id, own.on_behalf_of_id) == (cast.p.finance.id, None)
    [others] = seats.resolve_seats(ResolveSeatsInput(named, now, submitter_id=cast.p.rep.id,
                                                     owner_id=cast.p.rep.id))
    assert (others.assignee_id, others.on_behalf_of_id) == (cast.sam.id, cast.p.finance.id)
    # A delegate who lost their approver role since is passed over too.
    with sessions.begin() as s:
        sam = s.get(User, cast.sam.id)
        assert sam is not None
        sam.role_rows = [r for r in sam.role_rows if r.role == "rep"]
    [after] = seats.resolve_seats(ResolveSeatsInput(named, now, submitter_id=cast.p.rep.id))
    assert after.assignee_id == cast.p.finance.id


async def test_ten_parallel_attempts_land_only_the_eligible(
        live_url: str, cast: Cast, sessions: sessionmaker[Session]) -> None:
    mgr = await token_client(live_url, cast.p.manager)
    # Out-of-office windows: five eligible delegates, five not.
    eligible = [cast.p.manager2, cast.p.finance, cast.p.legal, cast.sam, cast.mgr3]
    not_eligible = [cast.p.auditor, cast.p.rep, cast.peer, cast.p.admin, cast.p.manager]
    span = {"starts_at": "2030-03-01T00:00:00Z", "ends_at": "2030-03-08T00:00:00Z"}
    answers = await asyncio.gather(*(mgr.post("/api/v1/delegations", json={
        "delegate": u.email, **span}) for u in [*eligible, *not_eligible]))
    assert [r.status_code for r in answers] == [201] * 5 + [422] * 5
    with sessions() as s:
        landed = set(s.scalars(select(Delegation.delegate_id)))
        assert landed == {u.id for u in eligible}
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "delegation.created")) == 5

    # One task, ten delegations at once: one eligible lands; the ineligible are refused with
    # their reason, the other eligible ones because the task is no longer the manager's.
    _, tid, sam = await _sams_task(live_url, cast)
    targets = [cast.p.manager2, cast.mgr3, cast.p.auditor, cast.p.rep, cast.peer, cast.sam,
               cast.p.finance, cast.p.legal, cast.p.admin, cast.p.manager2]
    answers = await asyncio.gather(*(mgr.post(f"/api/v1/tasks/{tid}/delegate",
                                              json={"to": u.email}) for u in targets))
    codes = [r.status_code for r in answers]
    assert all(c < 500 for c in codes), [r.text for r in answers]
    assert codes.count(200) == 1
    winner = targets[codes.index(200)]
    assert winner in (cast.p.manager2, cast.mgr3)
    for target, r in zip(targets, answers, strict=True):
        if target is not winner:
            assert r.status_code == 403, r.text
        # Whatever the task's state when they arrive, these are never eligible: named.
        if target in (cast.p.auditor, cast.p.rep, cast.peer, cast.sam, cast.p.admin):
            assert target.name in r.json()["detail"], r.text
    await eventually(lambda: _assignee(sessions, tid) == winner.id)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "task.delegated")) == 1
        assert audit.verify(s).ok
    for c in (mgr, sam):
        await c.aclose()
