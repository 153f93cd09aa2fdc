"""``dealdesk up``: the whole stack on one machine, as supervised child processes.

Temporal dev server (state in var/temporal.db) → migrations → worker (and its warm spare) →
web (→ demo data). A child that dies (a worker killed by the OOM killer, a crashed web
process, even the dev server) is started again with back-off, and the rest of the stack stays
up: in-flight workflows carry on as soon as a worker polls again, which for the worker is at
once, since its warm spare takes over. Ctrl-C stops the children in reverse
order. Running it again resumes every in-flight workflow, because the dev server's SQLite
file and the store survive.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

from dealdesk.devserver import TemporalDevServer, port_open
from dealdesk.settings import Settings, with_secret_key
from store.db import make_engine, make_session_factory
from store.migrate import upgrade

console = Console()

BACKOFF_MAX = 30.0
SPARE_DELAY = 2.0
STEADY = 5.0
"""A child that ran this long before dying was killed, not crash-looping (a broken install
dies within a second or two of starting): it is started again at once and its back-off resets.
One that dies sooner waits 1, 2, 4… up to 30 s."""


@dataclass
class Child:
    """One supervised process: ``dealdesk worker`` or ``dealdesk web``."""

    command: str
    log: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 0.0
    restart_at: float | None = None
    restarts: int = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - lives as long as the child
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "dealdesk", self.command, *self.args], stdout=out,
            stderr=subprocess.STDOUT)
        out.close()  # the child has its own copy
        self.started = time.monotonic()
        self.restart_at = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Spare:
    """A warm ``dealdesk worker --standby``: loaded and connected, it polls the moment it gets
    SIGUSR1. When the worker dies the spare takes over at once (a cold start takes seconds:
    imports, the PKI, the client), and a new spare is started behind it."""

    child: Child
    ready_file: Path
    respawn_at: float = 0.0

    @property
    def ready(self) -> bool:
        return self.child.alive and self.ready_file.exists()

    def take_over(self, worker: Child, now: float) -> None:
        assert self.child.proc is not None
        self.child.proc.send_signal(signal.SIGUSR1)
        worker.proc, worker.started, worker.restart_at = self.child.proc, now, None
        self.child.proc = None
        self.ready_file.unlink(missing_ok=True)
        # The next spare starts a moment later, once the new worker has begun replaying what
        # is in flight: a worker killed again soon after finds a spare (mostly) ready.
        self.respawn_at = now + SPARE_DELAY


@dataclass
class Supervisor:
    """Keeps the children (and the dev server we started) running until :meth:`stop`."""

    children: list[Child]
    server: TemporalDevServer | None
    spare: Spare | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def tick(self, now: float) -> None:
        for child in self.children:
            proc = child.proc
            if proc is None or proc.poll() is None:
                continue
            if child.command == "worker" and self.spare is not None and self.spare.ready \
                    and not self.stopping.is_set():
                console.print(f"[yellow]dealdesk worker exited with code {proc.returncode}; "
                              f"its warm spare took over (see {child.log})[/yellow]")
                child.restarts += 1
                self.spare.take_over(child, now)
                continue
            if child.restart_at is None:
                ran = now - child.started
                child.backoff = 0.0 if ran >= STEADY else min(max(child.backoff * 2, 1.0),
                                                              BACKOFF_MAX)
                child.restart_at = now + child.backoff
                console.print(f"[yellow]dealdesk {child.command} exited with code "
                              f"{proc.returncode}; starting it again"
                              f"{f' in {child.backoff:.0f} s' if child.backoff else ''} "
                              f"(see {child.log})[/yellow]")
            elif now >= child.restart_at and not self.stopping.is_set():
                child.restarts += 1
                child.spawn()
        spare = self.spare
        if spare is not None and not spare.child.alive and now >= spare.respawn_at \
                and not self.stopping.is_set():
            spare.child.spawn()  # the spare died (or was used): another one stands by
        if self.server is not None and not self.server.running and not self.stopping.is_set():
            console.print("[yellow]the Temporal dev server exited; starting it again[/yellow]")
            try:
                self.server.start()
            except RuntimeError as e:
                console.print(f"[red]{e}[/red]")

    def run(self) -> None:
        while not self.stopping.wait(0.3):
            self.tick(time.monotonic())

    def stop(self) -> None:
        self.stopping.set()
        everyone = [*([self.spare.child] if self.spare else []), *self.children]
        for child in reversed(everyone):
            child.stop()
        for child in reversed(everyone):
            child.wait()
        if self.server is not None:
            self.server.stop()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run_stack(settings: Settings, *, demo: bool) -> int:
    var = settings.var_dir
    var.mkdir(parents=True, exist_ok=True)
    # Made here, before the children start, so every web process reads the same key.
    with_secret_key(settings)
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
    children = [Child("worker", var / "worker.log"), Child("web", var / "web.log")]
    ready = var / "run" / "worker-standby.ready"
    ready.unlink(missing_ok=True)
    spare = Spare(Child("worker", var / "worker.log", ("--standby", str(ready))), ready)
    for child in children:
        child.spawn()
    spare.child.spawn()
    supervisor = Supervisor(children, server, spare)
    watcher = threading.Thread(target=supervisor.run, name="supervisor", daemon=True)
    watcher.start()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        deadline = time.monotonic() + 90
        while not _healthy(settings.base_url):
            if stop.wait(0.3):
                return 0
            if time.monotonic() > deadline:
                console.print(f"[red]dealdesk did not become healthy; see {var}/web.log and "
                              f"{var}/worker.log ({settings.base_url}/healthz says why)[/red]")
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
        stop.wait()
        return 0
    finally:
        console.print("Stopping…")
        supervisor.stop()
        watcher.join(5)


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
