"""Test helpers: building users, accounts, quotes and policies through the real services."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from dealdesk.settings import Settings
from store.models import Account, ApprovalRequest, ApprovalTask, Quote, User, UserRole
from web.services.passwords import hash_password
from web.services.policies import save_policy
from web.services.quotes import QuoteFields, create_quote

T = TypeVar("T")
_seq = itertools.count(1)


async def eventually(fn: Callable[[], Awaitable[T] | T], *, timeout: float = 15.0,
                     interval: float = 0.05) -> T:
    """Poll ``fn`` until it returns a truthy value without raising AssertionError."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = fn()
            if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
                value = await value  # type: ignore[misc]
            if value:
                return value  # type: ignore[return-value]
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s: {last}")
        await asyncio.sleep(interval)


def make_user(s: Session, name: str, *roles: str, manager: User | None = None,
              email: str | None = None) -> User:
    user = User(email=email or f"{name.lower().replace(' ', '.')}.{next(_seq)}@test.example",
                name=name, password_hash=hash_password("pw"),
                manager_id=manager.id if manager else None)
    user.role_rows = [UserRole(role=r) for r in roles]
    s.add(user)
    s.flush()
    return user


def make_account(s: Session, name: str | None = None) -> Account:
    acc = Account(name=name or f"Account {next(_seq)}", region="NA")
    s.add(acc)
    s.flush()
    return acc


def quote_fields(account: Account, **over: Any) -> QuoteFields:
    base: dict[str, Any] = dict(
        account_id=account.id, title=f"Quote {next(_seq)}", currency="USD",
        list_amount=10_000_000, net_amount=8_500_000, cost_amount=3_000_000, term_months=12)
    base.update(over)
    return QuoteFields(**base)


def make_quote(s: Session, owner: User, account: Account, **over: Any) -> Quote:
    return create_quote(s, owner, quote_fields(account, **over))


def load_policy(s: Session, source: str) -> None:
    save_policy(s, source, None)


def open_tasks(sessions: sessionmaker[Session], quote_id: int,
               step: str | None = None) -> list[ApprovalTask]:
    with sessions() as s:
        q = select(ApprovalTask).where(ApprovalTask.quote_id == quote_id,
                                       ApprovalTask.state == "open")
        if step:
            q = q.where(ApprovalTask.step_key == step)
        return list(s.scalars(q.order_by(ApprovalTask.id)).unique())


def request_status(sessions: sessionmaker[Session], workflow_id: str) -> str | None:
    with sessions() as s:
        return s.scalar(select(ApprovalRequest.status)
                        .where(ApprovalRequest.workflow_id == workflow_id))


async def parent_of(client: Client, workflow_id: str) -> str | None:
    """The workflow's parent, once it runs: a deal's process starts its steps a moment after
    their outbox rows are sent."""
    async def parent() -> str | None:
        try:
            return (await client.get_workflow_handle(workflow_id).describe()).parent_id
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            return None

    return await eventually(parent, timeout=30)


async def replays(client: Client, workflow_id: str, workflows: list[type],
                  run_id: str | None = None) -> None:
    """The run's (the latest, or ``run_id``) history replays on today's code; with
    DEALDESK_SAVE_HISTORY=FILE it is also saved there (for tests/test_replay.py)."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    await Replayer(workflows=workflows).replay_workflow(history)
    if target := os.environ.get("DEALDESK_SAVE_HISTORY"):
        saved = {"workflow_id": workflow_id, "history": json.loads(history.to_json())}
        await asyncio.to_thread(Path(target).write_text, json.dumps(saved))


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[str]:
    """The real app under uvicorn on a free port (no worker of its own); yields its URL."""
    import uvicorn

    from dealdesk.devserver import free_port
    from web.app import create_app
    from web.health_first import HealthFirstProtocol

    port = free_port()
    live = settings.model_copy(update={"web_port": port, "base_url": f"http://127.0.0.1:{port}"})
    server = uvicorn.Server(uvicorn.Config(create_app(live), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on",
                                           http=HealthFirstProtocol))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no start event
        await asyncio.sleep(0.02)
    try:
        yield live.base_url
    finally:
        server.should_exit = True
        await task
