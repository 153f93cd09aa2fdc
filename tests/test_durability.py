"""Chains survive their processes: a SIGKILLed worker and a restarted Temporal server.

(a) The ``dealdesk worker`` CLI runs as a subprocess; chains are approved part-way, the
worker is SIGKILLed, a chain is submitted while no worker runs, and a fresh worker
finishes every chain. (b) A Temporal dev server of this test's own (its SQLite file under
tmp_path) is stopped with SIGTERM mid-chain and started again on the same file and ports;
the in-process worker reconnects by itself and, with a new client, every chain finishes.
Both end with an intact audit chain.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.devserver import TemporalDevServer, free_ports
from dealdesk.runtime import connect
from dealdesk.settings import Settings
from dealdesk.worker import build_worker
from store import audit
from store.models import User
from tests.chain_fixtures import TWO_STEP_POLICY, Deal, outbox
from tests.support import eventually, load_policy, make_user

TWO_STEPS = dict(net_amount=7_500_000)  # 25% off: manager, then deal desk


@dataclass
class People:
    rep: User
    mgr: User
    desk: User


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    with sessions.begin() as s:
        p = People(make_user(s, "Rita Rep", "rep"), make_user(s, "Mo Manager", "sales_manager"),
                   make_user(s, "Dee Desk", "deal_desk"))
        load_policy(s, TWO_STEP_POLICY)
        s.expunge_all()
    return p


async def settled(client: Client, wid: str) -> bool:
    """No activity or workflow task in flight, so killing a worker strands nothing."""
    desc = (await client.get_workflow_handle(wid).describe()).raw_description
    return not desc.pending_activities and not desc.HasField("pending_workflow_task")


async def finish(deals: list[Deal], p: People, *, at_manager: list[Deal]) -> None:
    """Approve the remaining steps of every deal, concurrently, until all are approved."""
    async def one(d: Deal) -> None:
        if d in at_manager:
            [m] = await d.tasks("manager", timeout=30)
            assert await d.act(m, p.mgr) == "approved"
        [dd] = await d.tasks("desk", timeout=30)
        assert await d.act(dd, p.desk) == "approved"
        await d.status("approved")
    await asyncio.gather(*(one(d) for d in deals))


async def assert_clean_store(sessions: sessionmaker[Session], deals: list[Deal]) -> None:
    """Each chain mailed its outcome exactly once, and the audit chain is intact."""
    expected = sorted(f"{d.wid}:outcome:{d.rep.id}" for d in deals)
    await eventually(lambda: sorted(k for k, _ in outbox(sessions, ":outcome:")) == expected)
    with sessions() as s:
        result = audit.verify(s)
    assert result.ok, result


# ------------------------------------------------------------------ (a) worker killed
async def test_chains_finish_after_the_worker_is_killed(
        people: People, sessions: sessionmaker[Session], client: Client, settings: Settings,
        worker_process) -> None:
    first = worker_process()
    deals = [Deal(sessions, client, settings, people.rep, **TWO_STEPS) for _ in range(3)]
    for d in deals:
        await d.submit()
    for d in deals:
        [m] = await d.tasks("manager")
        assert await d.act(m, people.mgr) == "approved"
        await d.tasks("desk")
    for d in deals:
        await eventually(lambda d=d: settled(client, d.wid))

    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    late = Deal(sessions, client, settings, people.rep, **TWO_STEPS)
    await late.submit()  # accepted by Temporal while no worker runs

    second = worker_process()
    await finish([*deals, late], people, at_manager=[late])
    assert second.poll() is None, "the new worker died"
    await assert_clean_store(sessions, [*deals, late])


# ------------------------------------------------------------------ (b) server restarted
@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[TemporalDevServer]:
    ports = free_ports(3)
    server = TemporalDevServer(db_file=tmp_path / "temporal" / "own.db", port=ports[0],
                               http_port=ports[1], metrics_port=ports[2],
                               log_file=tmp_path / "own-server.log")
    server.start()
    yield server
    server.stop()


async def test_chains_finish_after_the_temporal_server_restarts(
        people: People, sessions: sessionmaker[Session], settings: Settings,
        own_server: TemporalDevServer) -> None:
    # The port opens before the frontend is healthy: connect as the worker CLI does, retrying.
    own = settings.model_copy(update={"temporal_address": own_server.address})
    client = await connect(own)
    worker = build_worker(client, own, sessions)
    running = asyncio.create_task(worker.run())
    try:
        deals = [Deal(sessions, client, settings, people.rep, **TWO_STEPS) for _ in range(3)]
        for d in deals:
            await d.submit()
        for d in deals[:2]:  # the third waits at its first step
            [m] = await d.tasks("manager")
            assert await d.act(m, people.mgr) == "approved"
            await d.tasks("desk")
        await deals[2].tasks("manager")
        for d in deals:
            await eventually(lambda d=d: settled(client, d.wid))

        # The worker keeps running through the restart and must find the server again itself.
        await asyncio.to_thread(own_server.stop)  # SIGTERM, then wait for the port to close
        await asyncio.to_thread(own_server.start)
        client = await connect(own)
        for d in deals:
            d.client = client
            desc = await client.get_workflow_handle(d.wid).describe()
            assert desc.status is not None and desc.status.name == "RUNNING"
        await finish(deals, people, at_manager=deals[2:])
        await assert_clean_store(sessions, deals)
    finally:
        await worker.shutdown()
        await running
