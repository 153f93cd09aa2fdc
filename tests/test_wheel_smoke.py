"""The wheel works on its own: installed in a fresh venv (dependencies from the package
index), its ``dealdesk`` migrates a PostgreSQL database, creates users, loads the packaged
demo policy, and runs a worker and the web app against the session's Temporal dev server,
from a directory that is not the checkout. Then a deal goes through over HTTP: a quote is
approved by everyone it needs, its contract is sent for signature, a customer signs on the
signing page, and the sealed PDF downloads with valid signatures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import create_engine, text

from dealdesk.devserver import TemporalDevServer, free_port
from documents.verify import default_trust_roots, verify_pdf
from tests.pg import PostgresServer
from tests.wheel_support import ROOT

pytestmark = pytest.mark.postgres
T = TypeVar("T")
PASSWORD = "smoke-pw"
LINK = re.compile(r"/sign/([A-Za-z0-9_-]{20,})")
CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')
DEADLINE = 240.0  # seconds for the whole run once the venv exists


class Installed:
    """The installed ``dealdesk`` with one environment, and the processes it started."""

    def __init__(self, venv: Path, cwd: Path, env: dict[str, str]) -> None:
        self.venv, self.cwd, self.env = venv, cwd, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.deadline = time.monotonic() + DEADLINE

    def left(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the smoke run took longer than {DEADLINE:g} s")
        return remaining

    def run(self, *args: str) -> str:
        done = subprocess.run([str(self.venv / "bin" / "dealdesk"), *args], env=self.env,
                              cwd=self.cwd, capture_output=True, text=True,
                              timeout=min(120, self.left()), check=False)
        assert done.returncode == 0, f"dealdesk {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def start(self, command: str) -> None:
        with open(self.cwd / f"{command}.log", "wb") as log:
            self.procs[command] = subprocess.Popen(
                [str(self.venv / "bin" / "dealdesk"), command], env=self.env, cwd=self.cwd,
                stdout=log, stderr=subprocess.STDOUT)

    def eventually(self, what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
        deadline = min(time.monotonic() + timeout, self.deadline)
        while True:
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"dealdesk {name} exited with {proc.returncode}"
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.read_text(errors='replace')[-6000:]}"
                         for p in sorted(self.cwd.glob("*.log")))

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def app(installed_venv: Path, postgres: PostgresServer, temporal_server: TemporalDevServer,
        tmp_path: Path) -> Iterator[Installed]:
    cwd = tmp_path / "run"
    cwd.mkdir()
    # Nothing of the checkout: its venv and sources stay off PATH and PYTHONPATH.
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and not Path(p).resolve().is_relative_to(ROOT)]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith(
               "DEALDESK_")}
    env.update({
        "PATH": os.pathsep.join([str(installed_venv / "bin"), *path]),
        "DEALDESK_ENVIRONMENT": "test",
        "DEALDESK_DATABASE_URL": postgres.create_database(f"smoke_{uuid.uuid4().hex[:10]}"),
        "DEALDESK_TEMPORAL_ADDRESS": temporal_server.address,
        "DEALDESK_TASK_QUEUE": f"smoke-{uuid.uuid4().hex[:8]}",
        "DEALDESK_WORKFLOW_PREFIX": f"smoke{uuid.uuid4().hex[:8]}-",
        "DEALDESK_VAR_DIR": str(cwd / "var"),
        "DEALDESK_WEB_PORT": str(free_port()),
    })
    installed = Installed(installed_venv, cwd, env)
    yield installed
    installed.stop()


@pytest.mark.timeout(360)
def test_the_installed_wheel_runs_a_deal_end_to_end(app: Installed) -> None:
    try:
        _deal(app)
    except BaseException:
        print(app.logs())  # shown by pytest with the failure
        raise


def _deal(app: Installed) -> None:
    where = subprocess.run(
        [str(app.venv / "bin" / "python"), "-c",
         "import dealdesk.demo, web.app; print(web.app.__file__); "
         "print(dealdesk.demo.__file__)"],
        env=app.env, cwd=app.cwd, capture_output=True, text=True, check=True, timeout=60)
    web_file, demo_file = where.stdout.split()
    assert Path(web_file).is_relative_to(app.venv), "web.app came from outside the venv"
    policy = Path(demo_file).parent / "policy.yaml"  # packaged data, read from the install

    assert "up to date" in app.run("migrate")
    # The packaged policy names its CFO step's approver: that user must exist to load it.
    users = {"rep": "rep@smoke.test", "sales_manager": "manager@smoke.test",
             "deal_desk": "desk@smoke.test", "cfo": "cfo@demo.test"}
    for role, email in users.items():
        app.run("users", "create", email, "--name", f"Smoke {role}", "--role", role,
                "--password", PASSWORD)
    assert "saved policy standard version 1" in app.run("policies", "load", str(policy))

    app.start("worker")
    app.start("web")
    base = f"http://127.0.0.1:{app.env['DEALDESK_WEB_PORT']}"
    queue = app.env["DEALDESK_TASK_QUEUE"]

    def healthy() -> dict[str, Any] | None:
        try:
            r = httpx.get(f"{base}/healthz", timeout=5)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    health = app.eventually("/healthz to report everything up", healthy, timeout=120)
    assert health["database"]["dialect"] == "postgresql"
    assert health["task_queues"][queue]["workflow_pollers"] >= 1
    assert health["tools"]["ok"], health["tools"]  # bootstrap installed every runtime tool

    with httpx.Client(base_url=base, timeout=30) as http:
        def token(email: str) -> dict[str, str]:
            r = http.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['token']}"}

        rep = token(users["rep"])
        approvers = [token(users["sales_manager"]), token(users["deal_desk"])]

        r = http.post("/api/v1/accounts", headers=rep, json={"name": "Smoke Industries"})
        assert r.status_code == 201, r.text
        # 25% off: the demo policy wants the sales manager, then the deal desk.
        r = http.post("/api/v1/quotes", headers=rep, json={
            "account_id": r.json()["id"], "title": "Smoke fleet", "currency": "USD",
            "list_amount": 10_000_000, "net_amount": 7_500_000, "cost_amount": 2_000_000,
            "term_months": 12})
        assert r.status_code == 201, r.text
        quote_id = r.json()["id"]
        r = http.post(f"/api/v1/quotes/{quote_id}/submit", headers=rep)
        assert r.status_code == 202, r.text

        decided: list[str] = []

        def approved() -> bool:
            for headers in approvers:
                for task in http.get("/api/v1/inbox", headers=headers).json():
                    if task["quote_id"] == quote_id and task["id"] not in decided:
                        d = http.post(f"/api/v1/tasks/{task['id']}/decision", headers=headers,
                                      json={"decision": "approve", "comment": "smoke"})
                        assert d.status_code == 200, d.text
                        decided.append(task["id"])
            quote = http.get(f"/api/v1/quotes/{quote_id}", headers=rep).json()
            return bool(quote["status"] == "approved")

        app.eventually("the quote to be approved", approved)
        assert len(decided) == 2  # one task per step: manager, deal desk

        # Send for signature: the quote's own generated document (LibreOffice, from the
        # installed package's template), unchanged, with the quote linked.
        r = http.post(f"/api/v1/quotes/{quote_id}/document", headers=rep)
        assert r.status_code == 201, r.text
        quote_pdf = http.get(r.json()["pdf_url"], headers=rep)
        assert quote_pdf.status_code == 200 and quote_pdf.content.startswith(b"%PDF")
        spec = {"title": "Smoke MSA", "quote_id": quote_id, "recipients": [
            {"name": "Ann Buyer", "email": "ann@smoke.example"}]}
        r = http.post("/api/v1/envelopes", headers=rep,
                      files={"document": ("quote.pdf", quote_pdf.content, "application/pdf")},
                      data={"spec": json.dumps(spec)})
        assert r.status_code == 201, r.text
        envelope_id = r.json()["id"]

        # No SMTP: the invitation waits in the outbox table.
        engine = create_engine(app.env["DEALDESK_DATABASE_URL"])
        try:
            def signing_token() -> str | None:
                with engine.connect() as c:
                    bodies = c.execute(text(
                        "SELECT body FROM outbox WHERE to_addr = :to ORDER BY id DESC"),
                        {"to": "ann@smoke.example"}).scalars().all()
                found = [m.group(1) for b in bodies if (m := LINK.search(b))]
                return found[0] if found else None

            sign_token = app.eventually("the signing invitation", signing_token)
        finally:
            engine.dispose()

    with httpx.Client(base_url=base, timeout=60) as signer:
        page = signer.get(f"/sign/{sign_token}")
        assert page.status_code == 200, page.text
        csrf = CSRF.search(page.text)
        assert csrf, "no CSRF token on the signing page"
        r = signer.post(f"/sign/{sign_token}/sign", data={
            "csrf_token": csrf.group(1), "typed_name": "Ann Buyer", "agree": "yes"})
        assert r.status_code == 200 and "Signed — thank you" in r.text, r.text[-2000:]

    with httpx.Client(base_url=base, timeout=30, headers=rep) as http:
        def completed() -> dict[str, Any] | None:
            env = http.get(f"/api/v1/envelopes/{envelope_id}").json()
            return env if env["status"] == "completed" else None

        envelope = app.eventually("the envelope to complete", completed)
        assert envelope["final_sha256"]
        r = http.get(f"/envelopes/{envelope_id}/files/final.pdf")
        assert r.status_code == 200, r.text
        sealed = r.content
        # The signed contract wins the deal.
        app.eventually("the quote to be won", lambda: http.get(
            f"/api/v1/quotes/{quote_id}").json()["status"] == "won")

    assert sealed.startswith(b"%PDF")
    report = verify_pdf(sealed, default_trust_roots(Path(app.env["DEALDESK_VAR_DIR"]) / "pki"))
    kinds = [s.kind for s in report.signatures]
    assert len(kinds) >= 2, kinds  # Ann's signature and the document timestamp
    assert report.valid, [(s.field_name, s.problems) for s in report.signatures]
