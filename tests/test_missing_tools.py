"""A machine without poppler: ``dealdesk up --demo`` names pdftotext and its package at
start-up, seeds everything but the envelopes (and says so, without a traceback), /healthz
lists the missing tools and stays up, and the app works."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from dealdesk.tools import TOOLS
from tests.test_stack import Stack, _env, _token

POPPLER = {t.name for t in TOOLS if t.package == "poppler-utils"}


def path_without(hidden: set[str], farm: Path) -> str:
    """A PATH with every program of the current one except ``hidden`` (symlinks in
    ``farm``): the programs are simply not installed, as far as anyone can tell."""
    farm.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not directory or not Path(directory).is_dir():
            continue
        for entry in Path(directory).iterdir():
            target = farm / entry.name
            if entry.name not in hidden and not target.exists() and not target.is_symlink():
                target.symlink_to(entry)
    return str(farm)


def test_up_demo_without_poppler_skips_the_envelopes_and_says_why(tmp_path: Path) -> None:
    env = _env(tmp_path / "var")
    env["PATH"] = path_without(POPPLER, tmp_path / "bin")
    stack = Stack(env)
    try:
        out = stack.start()
        assert "Traceback" not in out, out
        # At start-up: the tool, what it is for, and the package.
        assert "warning: pdftotext is missing" in out and "apt-get install poppler-utils" in out
        # The demo: everything but the envelopes, and why not.
        assert ("Skipped the demo's envelopes out for signature: missing pdftotext "
                "(apt-get install poppler-utils)") in out, out
        assert "Press Ctrl-C to stop" in out

        health = httpx.get(f"{stack.url}/healthz").json()
        assert health["ok"], health  # a missing tool does not take the app down
        missing = {t["name"]: t for t in health["tools"]["missing"]}
        assert not health["tools"]["ok"] and set(missing) == POPPLER & {
            t.name for t in TOOLS if t.scope == "runtime"}
        assert missing["pdftotext"] == {
            "name": "pdftotext", "package": "poppler-utils",
            "needed_for": "placing signature fields at [[sign:…]] anchors"}

        manager = _token(stack.url, "manager@demo.test")
        assert len(httpx.get(f"{stack.url}/api/v1/inbox", headers=manager).json()) >= 3
        quotes = httpx.get(f"{stack.url}/api/v1/quotes", headers=manager).json()
        assert "Initech engineering fleet" in {q["title"] for q in quotes}
        rep = _token(stack.url, "rep@demo.test")
        assert httpx.get(f"{stack.url}/api/v1/envelopes", headers=rep).json() == []
        for process in ("worker", "web"):
            log = (tmp_path / "var" / f"{process}.log").read_text()
            assert "pdftotext is missing" in log and "Traceback" not in log, process
        assert stack.stop() == 0
    finally:
        if stack.proc is not None:
            stack.proc.kill()
            stack.proc.wait()
