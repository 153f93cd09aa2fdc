"""Driving one quote through its approval chain in tests, through the web tier's services.

Shared by the SLA, durability and audit tests; the policy and people are each test's own.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store.db import write_lock
from store.models import ApprovalRequest, ApprovalStep, ApprovalTask, OutboxMessage, Quote, User
from tests.support import eventually, make_account, make_quote, open_tasks, request_status
from web.services import tasks as task_service
from web.services.quotes import submit_quote

# Manager above 10% off, then deal desk above 20% off.
TWO_STEP_POLICY = """
name: two-step
steps:
  - {key: manager, name: Sales manager, approvers: [{role: sales_manager}]}
  - {key: desk, name: Deal desk, after: [manager], approvers: [{role: deal_desk}]}
rules:
  - {id: discount, when: [{fact: discount_pct, op: gt, value: 10}], add: [manager]}
  - {id: deep, when: [{fact: discount_pct, op: gt, value: 20}], add: [desk]}
"""


class Deal:
    """A quote owned and submitted by ``rep``; ``client`` may be swapped (server restarts)."""

    def __init__(self, sessions: sessionmaker[Session], client: Client, settings: Settings,
                 rep: User, **fields: object) -> None:
        self.sessions, self.client, self.settings, self.rep = sessions, client, settings, rep
        with sessions() as s:
            write_lock(s)  # a worker may be writing: queue for the lock, don't fail on it
            self.quote_id = make_quote(s, s.merge(rep), make_account(s), **fields).id
            s.commit()
        self.wid = ""

    async def submit(self) -> str:
        with self.sessions() as s:
            quote = s.get(Quote, self.quote_id)
            assert quote is not None
            self.wid = await submit_quote(s, self.client, quote, s.merge(self.rep),
                                          task_queue=self.settings.task_queue,
                                          prefix=self.settings.workflow_prefix)
            s.commit()
        return self.wid

    async def tasks(self, step: str, count: int = 1, timeout: float = 15.0) -> list[str]:
        found = await eventually(
            lambda: len(ts := open_tasks(self.sessions, self.quote_id, step)) == count and ts,
            timeout=timeout)
        return [t.id for t in found]

    async def act(self, task_id: str, user: User, decision: str = "approve",
                  comment: str = "") -> str:
        with self.sessions() as s:
            result = await task_service.decide(s, self.client, task_id, s.merge(user), decision,
                                               comment)
        return result.task.state

    async def status(self, expected: str, timeout: float = 15.0) -> None:
        await eventually(lambda: request_status(self.sessions, self.wid) == expected,
                         timeout=timeout)

    def task(self, task_id: str) -> ApprovalTask:
        with self.sessions() as s:
            row = s.get(ApprovalTask, task_id)
            assert row is not None, task_id
            return row

    def steps(self) -> dict[str, ApprovalStep]:
        with self.sessions() as s:
            req = s.scalar(select(ApprovalRequest)
                           .where(ApprovalRequest.workflow_id == self.wid))
            assert req is not None
            return {st.key: st for st in req.steps}


def outbox(sessions: sessionmaker[Session], containing: str = "") -> list[tuple[str, str]]:
    """(message key, recipient) of every queued mail whose key contains ``containing``."""
    with sessions() as s:
        rows = s.execute(select(OutboxMessage.message_key, OutboxMessage.to_addr)
                         .where(OutboxMessage.message_key.contains(containing))
                         .order_by(OutboxMessage.id))
        return [(k, a) for k, a in rows]
