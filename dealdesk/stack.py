"""``dealdesk up``: the whole stack on one machine, as child processes.

Temporal dev server (state in var/temporal.db) → migrations → worker → web (→ demo data).
Ctrl-C stops the children in reverse order. Running it again resumes every in-flight
workflow, because the dev server's SQLite file and the store survive.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

from dealdesk.devserver import TemporalDevServer, port_open
from dealdesk.settings import Settings
from store.db import make_engine, make_session_factory
from store.migrate import upgrade

console = Console()


def _spawn(command: str, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "dealdesk", command], stdout=out, stderr=subprocess.STDOUT)


def _wait_healthy(url: str, children: list[subprocess.Popen[bytes]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.poll() is not None for c in children):
            return False
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def run_stack(settings: Settings, *, demo: bool) -> int:
    var = settings.var_dir
    var.mkdir(parents=True, exist_ok=True)
    host, port = settings.temporal_address.rsplit(":", 1)
    server: TemporalDevServer | None = None
    if port_open(host, int(port)):
        console.print(f"Using the Temporal server already listening on {settings.temporal_address}")
    else:
        server = TemporalDevServer(
            db_file=var / "temporal.db", host=host, port=int(port),
            http_port=settings.temporal_http_port, metrics_port=settings.temporal_metrics_port,
            ui_port=settings.temporal_ui_port, log_file=var / "temporal.log")
        console.print("Starting the Temporal dev server…")
        server.start()
    upgrade(settings.database_url)
    children = [_spawn("worker", var / "worker.log"), _spawn("web", var / "web.log")]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        if not _wait_healthy(settings.base_url, children, timeout=60):
            console.print(f"[red]dealdesk did not become healthy; see {var}/web.log and "
                          f"{var}/worker.log[/red]")
            return 1
        if demo:
            _seed_demo(settings)
        console.print(f"\n[bold]dealdesk is running[/bold]\n"
                      f"  App:          {settings.base_url}\n"
                      f"  Temporal UI:  http://{host}:{settings.temporal_ui_port}\n"
                      f"  Health:       {settings.base_url}/healthz\n"
                      f"  Logs:         {var}/*.log\n" +
                      ("  Demo logins:  manager@demo.test, dealdesk@demo.test, rep@demo.test, "
                       "admin@demo.test … password 'demo'\n" if demo else "") +
                      "Press Ctrl-C to stop.")
        while not stopping:
            dead = [c for c in children if c.poll() is not None]
            if dead:
                console.print(f"[red]a child process exited ({dead[0].args!r}); stopping[/red]")
                code = 1
                break
            time.sleep(0.3)
    finally:
        console.print("Stopping…")
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        if server is not None:
            server.stop()
    return code


def _seed_demo(settings: Settings) -> None:
    from dealdesk.demo import seed_records, seed_workflows
    from dealdesk.runtime import connect

    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    if seed_records(sessions):
        console.print("Seeding demo data…")

        def say(line: str) -> None:
            console.print(line, style="yellow", markup=False, highlight=False, soft_wrap=True)

        async def workflows() -> None:
            client = await connect(settings)
            await seed_workflows(sessions, client, settings, say)

        asyncio.run(workflows())
    engine.dispose()
