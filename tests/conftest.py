"""Shared fixtures: one real Temporal dev server per test session, a fresh migrated store per
test (SQLite by default; PostgreSQL for tests marked ``postgres``), and a worker on a
uuid task queue per test."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.devserver import TemporalDevServer, free_ports
from dealdesk.housekeeping import Housekeeping
from dealdesk.runtime import connect
from dealdesk.settings import Settings
from dealdesk.worker import build_worker, open_pki
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from tests.envelope_support import Cast
from tests.pg import PostgresServer
from tests.processes import Processes
from tests.support import make_user, serve
from tests.wheel_support import installed_venv, wheel  # noqa: F401 - session fixtures


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    root = tmp_path_factory.mktemp("temporal")
    ports = free_ports(3)
    server = TemporalDevServer(db_file=root / "temporal.db", port=ports[0],
                               http_port=ports[1], metrics_port=ports[2],
                               log_file=root / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def client(temporal_server: TemporalDevServer) -> Client:
    # The port opens before the frontend is healthy ("Frontend is not healthy yet"): retry.
    return await connect(Settings(environment="test", temporal_address=temporal_server.address))


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path,
                 migrated_template: Path) -> str:
    if request.node.get_closest_marker("postgres"):
        pg: PostgresServer = request.getfixturevalue("postgres")
        url = pg.create_database(f"t_{uuid.uuid4().hex[:12]}")
        upgrade(url)
        return url
    path = tmp_path / "dealdesk.db"
    shutil.copy(migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def pki_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One internal PKI for the session (four RSA keys take a while), copied per test."""
    var = tmp_path_factory.mktemp("pki-template")
    open_pki(Settings(environment="test", var_dir=var))
    return var / "pki"


@pytest.fixture
def settings(database_url: str, temporal_server: TemporalDevServer, tmp_path: Path,
             pki_template: Path) -> Settings:
    shutil.copytree(pki_template, tmp_path / "var" / "pki")
    return Settings(environment="test", database_url=database_url, var_dir=tmp_path / "var",
                    temporal_address=temporal_server.address,
                    task_queue=f"deals-{uuid.uuid4().hex[:8]}",
                    workflow_prefix=f"t{uuid.uuid4().hex[:8]}-")


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
async def worker(client: Client, settings: Settings,
                 sessions: sessionmaker[Session]) -> AsyncIterator[str]:
    w = build_worker(client, settings, sessions)
    task = asyncio.create_task(w.run())
    # As in `dealdesk worker`: the heartbeat /healthz reads and the reconciler of starts.
    chores = asyncio.create_task(Housekeeping(client, sessions, settings.task_queue,
                                              workflow_prefix=settings.workflow_prefix).run())
    yield settings.task_queue
    chores.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await chores
    # Rarely the SDK core never answers a shutdown (a poll that does not return); the test
    # is over either way, so don't let that hang the suite.
    try:
        await asyncio.wait_for(w.shutdown(), timeout=15)
        await asyncio.wait_for(task, timeout=5)
    except TimeoutError:
        task.cancel()


@pytest.fixture
async def live_url(settings: Settings, worker: str) -> AsyncIterator[str]:
    """The real app under uvicorn on a free port, with a worker on the same task queue."""
    async with serve(settings) as url:
        yield url


@pytest.fixture
def processes(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    """``dealdesk worker`` / ``dealdesk web`` subprocesses on this test's store and queue;
    stopped at the end (their logs are under tmp_path)."""
    procs = Processes(settings, tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def worker_process(processes: Processes) -> Callable[[], subprocess.Popen[bytes]]:
    """Start ``dealdesk worker`` subprocesses on this test's store and queue (call it)."""
    return processes.worker


@pytest.fixture
def cast(sessions: sessionmaker[Session]) -> Cast:
    """A sender (a rep) and an internal countersigner (the CFO)."""
    with sessions.begin() as s:
        sender = make_user(s, "Rae Rep", "rep")
        cfo = make_user(s, "Cleo CFO", "cfo")
        s.expunge_all()
    return Cast(sender, cfo)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium through Playwright (never a downloaded browser)."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        await b.close()
