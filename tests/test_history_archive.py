"""The history archive on the real stack: a deal closed (lost, its approval chain cancelled),
its closed runs archived once each however often and however concurrently the sweep runs
(with one audit row each), then deleted from Temporal, and ``dealdesk audit replay`` still
replays every one of them from the archive."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import subprocess
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from dealdesk.settings import Settings
from store import audit, history_archive
from store.deals import Deal, deal_workflow_id
from store.history_archive import ACTION, ArchiveCorrupt, ArchivedHistory, ClosedRun
from store.models import AuditEvent
from tests.processes import DEALDESK, Processes
from tests.support import eventually, make_account, make_user, parent_of
from tests.web_support import People, quote_body, seed_people, token_client
from web.services import histories, quotes


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


async def _lost_deal(live_url: str, client: Client, settings: Settings,
                     people: People) -> tuple[int, list[str]]:
    """A deal whose quote's chain runs, then marked lost: its process and the cancelled
    chain are closed. The deal's id and the two workflow ids."""
    rep = await token_client(live_url, people.rep)
    r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id, title="Archived"))
    assert r.status_code == 201, r.text
    qid, deal_id = int(r.json()["id"]), int(r.json()["deal_id"])
    assert (await rep.post(f"/api/v1/quotes/{qid}/submit")).status_code == 202
    dealflow = deal_workflow_id(settings.workflow_prefix, deal_id)
    chain = quotes.workflow_id(settings.workflow_prefix, qid, 1)
    assert await parent_of(client, chain) == dealflow
    r = await rep.post(f"/api/v1/deals/{deal_id}/lost", json={"reason": "no budget"})
    assert r.status_code == 200, r.text
    assert await asyncio.wait_for(client.get_workflow_handle(dealflow).result(), 30) == "lost"
    await rep.aclose()
    return deal_id, [dealflow, chain]


async def _closed_runs(client: Client, workflow_ids: list[str]) -> dict[str, str]:
    """run id → workflow id of the closed runs visibility lists, once all of them are."""
    async def listed() -> dict[str, str] | None:
        ids = ", ".join(f"'{w}'" for w in workflow_ids)
        runs = {e.run_id: e.id async for e in client.list_workflows(
            f"WorkflowId IN ({ids}) AND ExecutionStatus != 'Running'")}
        return runs if sorted(runs.values()) == sorted(workflow_ids) else None

    return await eventually(listed, timeout=30, interval=0.2)


async def _delete(client: Client, workflow_id: str, run_id: str) -> None:
    """Delete one run, as retention would. Under load the dev server may cancel the request
    ("operation was canceled"): it is idempotent, so it is sent again."""
    request = DeleteWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id))
    for attempt in range(5):
        try:
            await client.workflow_service.delete_workflow_execution(
                request, timeout=dt.timedelta(seconds=30))
            return
        except RPCError as e:
            if e.status not in (RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE,
                                RPCStatusCode.DEADLINE_EXCEEDED) or attempt == 4:
                raise
            await asyncio.sleep(1)


async def _gone(client: Client, workflow_id: str, run_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    except RPCError as e:
        assert e.status == RPCStatusCode.NOT_FOUND, e
        return True
    return False


async def test_closed_runs_are_archived_once_and_replay_after_temporal_deleted_them(
        live_url: str, client: Client, settings: Settings, people: People,
        sessions: sessionmaker[Session], processes: Processes) -> None:
    deal_id, workflow_ids = await _lost_deal(live_url, client, settings, people)
    closed = await _closed_runs(client, workflow_ids)
    for workflow_id in workflow_ids:
        status = (await client.get_workflow_handle(workflow_id).describe()).status
        assert status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.CANCELED)

    def sweep(batch_size: int = histories.BATCH) -> asyncio.Task[histories.SweepReport]:
        return asyncio.ensure_future(histories.archive_closed(
            client, sessions, task_queue=settings.task_queue,
            prefix=settings.workflow_prefix, batch_size=batch_size))

    # Bounded: a sweep takes at most its batch (the worker's own sweep may have taken some).
    first = await sweep(batch_size=1)
    assert len(first.archived) <= 1 and not first.gone
    # Two sweeps at once, then two more: every closed run is archived by exactly one.
    reports = [first, *await asyncio.gather(sweep(), sweep()), *await asyncio.gather(
        sweep(), sweep())]
    archived = [run for report in reports for run in report.archived]
    assert len(archived) == len(set(archived)) and set(archived) <= set(closed)
    assert [r.archived for r in reports[3:]] == [[], []]  # nothing left to do, nothing twice
    with sessions() as s:
        rows = s.scalars(select(ArchivedHistory).where(
            ArchivedHistory.deal_id == deal_id)).all()
        assert sorted(r.run_id for r in rows) == sorted(closed)
        assert {r.workflow_type for r in rows} == {"DealWorkflow", "ApprovalChainWorkflow"}
        assert {r.status for r in rows} <= {"completed", "canceled"}
        assert all(r.event_count > 3 and len(r.data) < r.size for r in rows)
        audit_rows = s.scalars(select(AuditEvent).where(AuditEvent.action == ACTION)).all()
        assert sorted(e.data["run_id"] for e in audit_rows) == sorted(closed)
        assert sorted(e.entity for e in audit_rows) == sorted(f"workflow:{w}" for w in workflow_ids)
        assert {e.data["deal_id"] for e in audit_rows} == {deal_id}
    # On demand, for the deal: nothing new.
    cli = await asyncio.to_thread(
        subprocess.run, [str(DEALDESK), "audit", "archive", "--deal", str(deal_id)],
        env=processes.env(), capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode == 0 and "archived 0 run(s)" in cli.stdout, cli.stdout + cli.stderr

    # Temporal deletes the histories (as retention would); the archive still has them.
    await asyncio.gather(*(_delete(client, wid, run) for run, wid in closed.items()))

    async def all_gone() -> bool:
        return all([await _gone(client, wid, run) for run, wid in closed.items()])

    await eventually(all_gone, timeout=120, interval=1)
    runs = await histories.deal_histories(client, sessions, settings.workflow_prefix, deal_id)
    assert sorted(r.run_id for r in runs) == sorted(closed)
    assert {r.source for r in runs} == {"archive"} and runs[0].workflow_id == workflow_ids[0]
    assert (await sweep()).archived == []
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ArchivedHistory)) == len(closed)

    cli = await asyncio.to_thread(
        subprocess.run, [str(DEALDESK), "audit", "replay", str(deal_id)],
        env=processes.env(), capture_output=True, text=True, timeout=180, check=False)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    lines = cli.stdout.splitlines()
    assert len(lines) == len(closed) and all(
        line.startswith("replays") and "archive)" in line for line in lines), lines

    # The auditor's timeline and evidence bundle read the same runs from the archive.
    auditor = await token_client(live_url, people.auditor)
    r = await auditor.get(f"/api/v1/deals/{deal_id}/history")
    assert r.status_code == 200, r.text
    shown = {e["subject"] for e in r.json()["timeline"] if e["source"] == "workflow"}
    assert shown == set(closed.values())
    r = await auditor.get(f"/api/v1/deals/{deal_id}/evidence", timeout=120)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        bundled = {n.split("/", 1)[1] for n in z.namelist() if "/histories/" in n}
    assert bundled == {f"histories/{wid}.{run}.json" for run, wid in closed.items()}
    await auditor.aclose()


async def test_replay_of_an_unknown_deal_is_refused(processes: Processes) -> None:
    unknown = await asyncio.to_thread(
        subprocess.run, [str(DEALDESK), "audit", "replay", "999"], env=processes.env(),
        capture_output=True, text=True, timeout=120, check=False)
    assert unknown.returncode == 2 and "no deal 999" in unknown.stderr


def _run(run_id: str, workflow_id: str = "x-health-recompute-1") -> ClosedRun:
    return ClosedRun(workflow_id, run_id, "HealthRecomputeWorkflow", "q", "completed",
                     dt.datetime.now(dt.UTC), 11, json.dumps({"events": [], "run": run_id}))


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgres", marks=[
    pytest.mark.postgres])])
def test_racing_writers_archive_a_run_once(dialect: str, sessions: sessionmaker[Session]) -> None:
    """Sweeps in several workers race on one run: one row, one audit row, and the history
    reads back as it was written."""
    with sessions() as s:
        assert s.get_bind().dialect.name == ("postgresql" if dialect == "postgres" else dialect)
    run = _run("run-1")

    def write() -> bool:
        with sessions() as s:
            stored = history_archive.archive(s, run, None, histories.ARCHIVER)
            s.commit()
            return stored

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: write(), range(4)))
    assert sorted(results) == [False, False, False, True]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ArchivedHistory)) == 1
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == ACTION)).all()
        assert event.entity == f"workflow:{run.workflow_id}"
        assert event.data["run_id"] == "run-1" and event.data["deal_id"] is None
        assert audit.verify(s).ok
    # Read back under its deal, checked against its hash; a changed byte is refused.
    with sessions.begin() as s:
        deal = Deal(account_id=make_account(s).id, owner_id=make_user(s, "Ola Owner", "rep").id,
                    name="Archived", currency="USD")
        s.add(deal)
        s.flush()
        s.execute(update(ArchivedHistory).values(deal_id=deal.id))
    with sessions() as s:
        [stored] = history_archive.deal_histories(s, deal.id)
        assert stored.history_json == run.history_json
        assert stored.sha256 == hashlib.sha256(run.history_json.encode()).hexdigest()
    with sessions.begin() as s:
        s.execute(update(ArchivedHistory).values(
            data=zlib.compress(run.history_json.replace("run-1", "run-2").encode())))
    with sessions() as s, pytest.raises(ArchiveCorrupt, match="does not match its SHA-256"):
        history_archive.deal_histories(s, deal.id)
