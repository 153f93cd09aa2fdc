"""ApprovalChainWorkflow on the real Temporal dev server, with the real store and activities."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store.db import write_lock
from store.models import Quote, User
from tests.chain_fixtures import Deal
from tests.support import (
    eventually,
    load_policy,
    make_user,
    open_tasks,
    replays,
    request_status,
)
from web.errors import Conflict, Forbidden, Invalid
from web.services import tasks as task_service
from web.services.quotes import QuoteFields, edit_quote, recall_quote
from workflows.approval_chain import ApprovalChainWorkflow

POLICY = """
name: test
escalation_role: deal_desk
steps:
  - key: manager
    name: Sales manager
    approvers: [{{role: sales_manager}}]
    mode: any
  - key: deal_desk
    name: Deal desk
    after: [manager]
    approvers: [{{role: deal_desk}}]
  - key: finance_legal
    name: Finance and legal
    after: [deal_desk]
    groups:
      - {{approvers: [{{role: finance}}], mode: all}}
      - {{approvers: [{{role: legal}}], mode: all}}
  - key: board
    name: Board quorum
    after: [finance_legal]
    approvers: [{{user: {b1}}}, {{user: {b2}}}, {{user: {b3}}}]
    mode: 2-of-3
  - key: execs
    name: Any executive
    after: [board]
    approvers: [{{user: {b1}}}, {{user: {b2}}}]
    mode: any
rules:
  - id: discount
    description: Discount over 10%
    when: [{{fact: discount_pct, op: gt, value: 10}}]
    add: [manager]
  - id: deep-discount
    when: [{{fact: discount_pct, op: gt, value: 20}}]
    add: [deal_desk]
  - id: big-deal
    when: [{{fact: total, op: gte, value: 50000000}}]
    add: [finance_legal]
  - id: terms
    when: [{{fact: nonstandard_terms, op: not_empty}}]
    add: [board]
  - id: long-term
    when: [{{fact: term_months, op: gt, value: 36}}]
    add: [execs]
"""


@dataclass
class Cast:
    rep: User
    manager: User
    manager2: User
    desk: User
    finance: User
    legal: User
    b1: User
    b2: User
    b3: User
    boss: User


@pytest.fixture
def cast(sessions: sessionmaker[Session]) -> Cast:
    with sessions.begin() as s:
        boss = make_user(s, "Boss Person", "cfo")
        c = Cast(
            rep=make_user(s, "Rita Rep", "rep"),
            manager=make_user(s, "Mona Manager", "sales_manager", manager=boss),
            manager2=make_user(s, "Max Manager", "sales_manager"),
            desk=make_user(s, "Dee Desk", "deal_desk"),
            finance=make_user(s, "Fin Ance", "finance"),
            legal=make_user(s, "Lee Gal", "legal"),
            b1=make_user(s, "Bo One", "cfo", manager=boss),
            b2=make_user(s, "Bo Two", "cfo"),
            b3=make_user(s, "Bo Three", "cfo"),
            boss=boss,
        )
        load_policy(s, POLICY.format(b1=c.b1.email, b2=c.b2.email, b3=c.b3.email))
        s.expunge_all()
    return c


@pytest.fixture
def deal(sessions: sessionmaker[Session], client: Client, settings: Settings, cast: Cast,
         worker: str):
    def make(**fields: object) -> Deal:
        return Deal(sessions, client, settings, cast.rep, **fields)
    return make


async def test_sequential_chain_runs_steps_in_order(deal, cast: Cast) -> None:
    d = deal(net_amount=7_500_000)  # 25% off a 100k list: manager then deal desk
    await d.submit()
    [t1] = await d.tasks("manager")
    assert open_tasks(d.sessions, d.quote_id, "deal_desk") == []
    assert await d.act(t1, cast.manager) == "approved"
    [t2] = await d.tasks("deal_desk")
    assert await d.act(t2, cast.desk) == "approved"
    await d.status("approved")
    steps = d.steps()
    assert [steps[k].state for k in ("manager", "deal_desk")] == ["approved", "approved"]
    with d.sessions() as s:
        assert s.get(Quote, d.quote_id).status == "approved"
    await replays(d.client, d.wid, [ApprovalChainWorkflow])


async def test_parallel_all_of_needs_both_groups(deal, cast: Cast) -> None:
    d = deal(list_amount=60_000_000, net_amount=58_000_000)  # big deal, small discount
    wid = await d.submit()
    fin, leg = await d.tasks("finance_legal", 2)
    assert await d.act(fin, cast.finance) == "approved"
    assert request_status(d.sessions, wid) == "running"
    await eventually(lambda: [t.id for t in open_tasks(d.sessions, d.quote_id)] == [leg])
    assert await d.act(leg, cast.legal) == "approved"
    await d.status("approved")


async def test_any_of_first_approval_completes_the_group(deal, cast: Cast) -> None:
    d = deal(net_amount=9_900_000, term_months=48)
    await d.submit()
    a, b = await d.tasks("execs", 2)
    assert await d.act(b, cast.b2) == "approved"
    await d.status("approved")
    with d.sessions() as s:
        from store.models import ApprovalTask
        assert s.get(ApprovalTask, a).state == "skipped"


async def test_two_of_three_quorum(deal, cast: Cast) -> None:
    d = deal(net_amount=9_900_000, nonstandard_terms=["uncapped liability"])
    wid = await d.submit()
    t1, t2, t3 = await d.tasks("board", 3)
    assert await d.act(t1, cast.b1) == "approved"
    assert request_status(d.sessions, wid) == "running"
    assert await d.act(t3, cast.b3) == "approved"
    await d.status("approved")
    with d.sessions() as s, pytest.raises(Conflict, match=r"ended|no longer open"):
        await task_service.decide(s, d.client, t2, s.merge(cast.b2), "approve")


async def test_a_decision_says_what_comes_next(deal, cast: Cast) -> None:
    """The chain's status stays "running" until its main line ends it, a moment after the
    last step closes; so the Update's result names the steps left and whether the decided
    step still waits, and the inbox can say "the quote is approved" at the last one."""
    d = deal(net_amount=7_500_000, nonstandard_terms=["uncapped liability"])
    await d.submit()

    async def approve(task_id: str, user: User) -> tuple[str, bool | None, list[str] | None]:
        with d.sessions() as s:
            r = await task_service.decide(s, d.client, task_id, s.merge(user), "approve")
        return r.chain_status, r.step_open, r.steps_left

    [manager] = await d.tasks("manager")
    assert await approve(manager, cast.manager) == (
        "running", False, ["Deal desk", "Board quorum"])
    [desk] = await d.tasks("deal_desk")
    assert await approve(desk, cast.desk) == ("running", False, ["Board quorum"])
    b1, b2, _ = await d.tasks("board", 3)
    assert await approve(b1, cast.b1) == ("running", True, [])  # 2-of-3: one more
    assert await approve(b2, cast.b2) == ("running", False, [])  # the last: being approved
    await d.status("approved")
    await replays(d.client, d.wid, [ApprovalChainWorkflow])


async def test_reject_ends_the_chain(deal, cast: Cast) -> None:
    d = deal(net_amount=7_500_000)
    await d.submit()
    [t1] = await d.tasks("manager")
    assert await d.act(t1, cast.manager, "reject", "Margin too thin") == "rejected"
    await d.status("rejected")
    assert open_tasks(d.sessions, d.quote_id) == []
    assert d.steps()["deal_desk"].state == "cancelled"
    with d.sessions() as s:
        assert s.get(Quote, d.quote_id).status == "rejected"


async def test_request_changes_then_resubmit_reapproves_only_changed_steps(
        deal, cast: Cast) -> None:
    # 25% off and non-standard terms: manager, deal desk, then the board.
    d = deal(net_amount=7_500_000, nonstandard_terms=["net 90"])
    await d.submit()
    [m] = await d.tasks("manager")
    await d.act(m, cast.manager)
    [dd] = await d.tasks("deal_desk")
    await d.act(dd, cast.desk)
    b1, b2, _ = await d.tasks("board", 3)
    await d.act(b1, cast.b1)
    await d.act(b2, cast.b2)
    await d.status("approved")

    # The rep deepens the discount: the discount steps re-open, the board's approval of
    # the unchanged terms carries over.
    with d.sessions() as s:
        write_lock(s)  # v1's worker may still be writing (its outcome mail): queue for the lock
        quote = s.get(Quote, d.quote_id)
        fields = QuoteFields(account_id=quote.account_id, title=quote.title, currency="USD",
                             list_amount=10_000_000, net_amount=7_000_000, cost_amount=3_000_000,
                             term_months=12, nonstandard_terms=["net 90"])
        edit_quote(s, quote, s.merge(cast.rep), fields)
        assert quote.version == 2
        s.commit()
    wid2 = await d.submit()
    assert wid2.endswith("-v2")
    [m2] = await d.tasks("manager")
    steps = d.steps()
    assert steps["board"].state == "carried_over"
    assert steps["board"].carried_from["decided_by"] == f"{cast.b1.name}, {cast.b2.name}"
    assert steps["board"].carried_from["quote_version"] == 1
    await d.act(m2, cast.manager2)
    [dd2] = await d.tasks("deal_desk")
    await d.act(dd2, cast.desk)
    await d.status("approved")
    assert open_tasks(d.sessions, d.quote_id, "board") == []


async def test_request_changes_requires_comment_and_ends_chain(deal, cast: Cast) -> None:
    d = deal(net_amount=8_500_000)
    await d.submit()
    [m] = await d.tasks("manager")
    with pytest.raises(Invalid, match="comment"):
        await d.act(m, cast.manager, "request_changes", "  ")
    assert await d.act(m, cast.manager, "request_changes", "Split the services line") == \
        "changes_requested"
    await d.status("changes_requested")


async def test_recall_by_submitter_cancels_open_tasks(deal, cast: Cast) -> None:
    d = deal(net_amount=8_500_000)
    await d.submit()
    [m] = await d.tasks("manager")
    with d.sessions() as s:
        quote = s.get(Quote, d.quote_id)
        with pytest.raises(Forbidden):
            await recall_quote(s, d.client, quote, s.merge(cast.manager), comment="",
                               prefix=d.settings.workflow_prefix)
        assert await recall_quote(s, d.client, quote, s.merge(cast.rep), comment="wrong price",
                                  prefix=d.settings.workflow_prefix) == "recalled"
    await d.status("recalled")
    with d.sessions() as s:
        from store.models import ApprovalTask
        assert s.get(ApprovalTask, m).state == "cancelled"
        assert s.get(Quote, d.quote_id).status == "draft"


async def test_validators_refuse(deal, cast: Cast) -> None:
    d = deal(net_amount=8_500_000)
    await d.submit()
    [m] = await d.tasks("manager")
    with d.sessions() as s:
        # Without the role.
        with pytest.raises(Forbidden, match="sales_manager queue"):
            await task_service.decide(s, d.client, m, s.merge(cast.desk), "approve")
        # Stale quote version.
        with pytest.raises(Conflict, match="version 1, not 7"):
            await task_service.decide(s, d.client, m, s.merge(cast.manager), "approve",
                                      quote_version=7)
        # Claimed by someone else.
        await task_service.claim(s, d.client, m, s.merge(cast.manager2))
        with pytest.raises(Forbidden, match="claimed by Max Manager"):
            await task_service.decide(s, d.client, m, s.merge(cast.manager), "approve")
        await task_service.claim(s, d.client, m, s.merge(cast.manager2), claim=False)
        # Closed task.
        await task_service.decide(s, d.client, m, s.merge(cast.manager), "approve")
        with pytest.raises(Conflict, match="already approved by Mona Manager"):
            await task_service.decide(s, d.client, m, s.merge(cast.manager2), "approve")
