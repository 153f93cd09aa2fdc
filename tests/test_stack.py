"""``dealdesk up --demo`` as a newcomer runs it: everything comes up, a demo approver's
inbox is not empty, the demo RFP's answers are in the repository, approving moves the quote
on, and after Ctrl-C a second ``up`` resumes the same chains from the files under var/."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dealdesk.devserver import free_ports


def _env(var: Path) -> dict[str, str]:
    grpc, http, metrics, ui, web = free_ports(5)
    return {
        **os.environ,
        "DEALDESK_VAR_DIR": str(var),
        "DEALDESK_TEMPORAL_ADDRESS": f"127.0.0.1:{grpc}",
        "DEALDESK_TEMPORAL_HTTP_PORT": str(http),
        "DEALDESK_TEMPORAL_METRICS_PORT": str(metrics),
        "DEALDESK_TEMPORAL_UI_PORT": str(ui),
        "DEALDESK_WEB_PORT": str(web),
    }


class Stack:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['DEALDESK_WEB_PORT']}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dealdesk", "up", "--demo"], env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        deadline = time.monotonic() + 120
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                return "".join(lines)
        raise AssertionError("dealdesk up did not come up:\n" + "".join(lines))

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(60)
        self.proc = None
        return code


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(_env(tmp_path / "var"))
    yield s
    if s.proc is not None:
        s.proc.kill()
        s.proc.wait()


def _token(url: str, email: str) -> dict[str, str]:
    r = httpx.post(f"{url}/api/v1/auth/token", json={"email": email, "password": "demo"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _wait(predicate, timeout: float = 30) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_up_demo_then_restart_resumes(stack: Stack) -> None:
    out = stack.start()
    assert stack.url in out and "Temporal UI" in out
    # No constant secret key: a random one made on the first run, readable only by us.
    key_file = Path(stack.env["DEALDESK_VAR_DIR"]) / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    health = httpx.get(f"{stack.url}/healthz").json()
    assert health["ok"] and health["task_queues"]["deals"]["workflow_pollers"] >= 1

    manager = _token(stack.url, "manager@demo.test")
    inbox = httpx.get(f"{stack.url}/api/v1/inbox", headers=manager).json()
    assert len(inbox) >= 3
    # The demo's catalog quotes: the fleet at 25% waits for the manager; the hub was won.
    quotes = httpx.get(f"{stack.url}/api/v1/quotes", headers=manager).json()
    fleet = next(q for q in quotes if q["title"] == "Initech engineering fleet")
    assert fleet["status"] == "pending_approval" and fleet["discount_pct"] > 25  # + volume
    finance = _token(stack.url, "finance@demo.test")
    _wait(lambda: [i for i in httpx.get(f"{stack.url}/api/v1/invoices", headers=finance).json()
                   if i["account"] == "Hooli" and i["number"].startswith("INV-")])
    # The demo's RFP, answered from the library: its answers are in the repository.
    rep = _token(stack.url, "rep@demo.test")
    rfp = next(r for r in httpx.get(f"{stack.url}/api/v1/rfps", headers=rep).json()
               if r["title"] == "State of Alaska IES — submittal forms")
    assert rfp["status"] == "approved" and 0 < rfp["answered"] < rfp["total"]
    answers = httpx.get(f"{stack.url}/api/v1/rfps/answers", headers=rep).json()
    assert {a["rfp_id"] for a in answers} == {rfp["id"]} and len(answers) == rfp["answered"]
    acme = next(t for t in inbox if t["account"] == "Acme Corporation")
    r = httpx.post(f"{stack.url}/api/v1/tasks/{acme['id']}/decision", headers=manager,
                   json={"decision": "approve", "comment": "fine"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    _wait(lambda: acme["id"] not in [t["id"] for t in httpx.get(
        f"{stack.url}/api/v1/inbox", headers=manager).json()])
    assert stack.stop() == 0

    # Second start on the same var/: no re-seeding, chains continue where they were.
    out = stack.start()
    assert "Seeding" not in out
    assert key_file.read_text() == key
    manager = _token(stack.url, "manager@demo.test")
    inbox_after = httpx.get(f"{stack.url}/api/v1/inbox", headers=manager).json()
    assert acme["id"] not in [t["id"] for t in inbox_after]
    assert len(inbox_after) == len(inbox) - 1
    globex = next(t for t in inbox_after if t["account"] == "Globex")
    r = httpx.post(f"{stack.url}/api/v1/tasks/{globex['id']}/decision", headers=manager,
                   json={"decision": "approve"})
    assert r.status_code == 200  # the resumed workflow took the Update
    desk = _token(stack.url, "dealdesk@demo.test")
    _wait(lambda: any(t["account"] == "Globex" for t in httpx.get(
        f"{stack.url}/api/v1/inbox", headers=desk).json()))
    assert stack.stop() == 0
