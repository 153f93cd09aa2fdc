"""``dealdesk worker`` and ``dealdesk web`` as real subprocesses of a test, on its store, its
Temporal queue and its var/ (for crash, load and scale-out tests: a process can be killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dealdesk.devserver import free_port
from dealdesk.settings import Settings

DEALDESK = Path(sys.executable).parent / "dealdesk"


@dataclass
class Processes:
    settings: Settings
    root: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        s = self.settings
        return {**os.environ, "DEALDESK_ENVIRONMENT": "test",
                "DEALDESK_DATABASE_URL": s.database_url,
                "DEALDESK_TEMPORAL_ADDRESS": s.temporal_address,
                "DEALDESK_TASK_QUEUE": s.task_queue,
                "DEALDESK_WORKFLOW_PREFIX": s.workflow_prefix,
                "DEALDESK_VAR_DIR": str(s.var_dir), **extra}

    def _spawn(self, command: str, **extra: str) -> subprocess.Popen[bytes]:
        if not DEALDESK.exists():
            raise RuntimeError(f"{DEALDESK} is missing: run .venv/bin/pip install -e .")
        with open(self.root / f"{command}-{len(self.procs)}.log", "wb") as log:
            proc = subprocess.Popen([str(DEALDESK), command], env=self.env(**extra),
                                    cwd=self.root, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def worker(self, **extra: str) -> subprocess.Popen[bytes]:
        return self._spawn("worker", **extra)

    def web(self, port: int | None = None, *, wait: bool = True,
            **extra: str) -> tuple[subprocess.Popen[bytes], str]:
        """A web process on ``port`` (a free one by default); waits until it answers."""
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        proc = self._spawn("web", DEALDESK_WEB_PORT=str(port), DEALDESK_BASE_URL=url, **extra)
        if wait:
            self.wait_listening(url, proc)
        return proc, url

    @staticmethod
    def wait_listening(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"dealdesk web exited with {proc.returncode}")
            try:
                httpx.get(f"{url}/static/app.css", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"dealdesk web did not answer at {url}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.root.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
