"""User templates render in a separate process with a time and a memory limit
(documents.sandbox): a runaway is stopped within its limit and named, the caller's event loop
keeps running meanwhile, nothing is left behind, normal renders are byte-identical to the
in-process ones, and the services turn an overrun into a 422 naming the template."""

from __future__ import annotations

import asyncio
import functools
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from documents import sandbox
from documents.quote_document import (
    QuoteDocumentError,
    TemplateLimitExceeded,
    render_docx,
    render_docx_isolated,
)
from store.blobs import BlobStore
from store.commerce import QuoteTemplate
from tests.sandbox_targets import crash, leave, not_bytes, raise_unpicklable
from tests.support import make_account, make_quote, make_user
from tests.test_quote_document import make_quote as make_doc
from tests.test_quote_document import user_template
from web.errors import Invalid
from web.services import quote_documents

ROOT = Path(__file__).resolve().parents[1]
FAST = sandbox.Limits(seconds=1, memory_mb=512)
MARGIN = 2.0  # seconds: killing and reaping take milliseconds, but two busy cores are shared
# Jinja's sandbox caps range() at 100,000 items, so a runaway nests two of them: 10^10 turns.
RUNAWAY = user_template("Before", "{% for i in range(100000) %}{% for j in range(100000) %}"
                                  "{% endfor %}{% endfor %}", "After")
LOOP = user_template("Dear {{ account_name }},", "{%p for line in lines %}",
                     "{{ line.sku }}: {{ line.net_total }}", "{%p endfor %}")


def descendants() -> dict[int, str]:
    """pid → state of every process below this one (the forkserver, its children), from /proc."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended while we looked
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            parents[int(entry.name)] = (int(ppid), state)
    found: dict[int, str] = {}
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, (ppid, _) in parents.items() if ppid in frontier}
        found.update({pid: parents[pid][1] for pid in frontier})
    return found


def ours() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name.startswith("dealdesk-")]


# -- limits ---------------------------------------------------------------------------------


def test_a_runaway_loop_is_stopped_within_its_time_limit() -> None:
    render_docx_isolated(make_doc(), LOOP, limits=FAST)  # the forkserver is up
    started = time.monotonic()
    with pytest.raises(TemplateLimitExceeded) as stopped:
        render_docx_isolated(make_doc(), RUNAWAY, limits=FAST)
    elapsed = time.monotonic() - started
    assert FAST.seconds <= elapsed < FAST.seconds + MARGIN
    assert stopped.value.limit == "time"
    assert str(stopped.value).startswith(
        "the quote template took longer than 1 s to fill in (the time limit")
    assert isinstance(stopped.value.__cause__, sandbox.TimeLimitExceeded)


@pytest.mark.parametrize("expression", [
    "{{ 'x' * 10**10 }}",  # one 10 GB string
    "{% for i in range(100000) %}{{ 'x' * 1000000 }}{% endfor %}",  # 1 MB at a time
])
def test_a_huge_allocation_is_stopped_by_the_memory_limit(expression: str) -> None:
    limits = sandbox.Limits(seconds=30, memory_mb=384)
    with pytest.raises(TemplateLimitExceeded) as stopped:
        render_docx_isolated(make_doc(), user_template(expression), limits=limits)
    assert stopped.value.limit == "memory"
    assert "needed more than 384 MB of memory to fill in (the memory limit)" in \
        str(stopped.value)


def test_a_limit_too_low_to_start_fails_that_render_not_the_forkserver() -> None:
    render_docx_isolated(make_doc(), LOOP)
    before = descendants()
    with pytest.raises(TemplateLimitExceeded) as stopped:
        render_docx_isolated(make_doc(), LOOP, limits=sandbox.Limits(seconds=5, memory_mb=8))
    assert stopped.value.limit == "memory"
    assert render_docx_isolated(make_doc(), LOOP) == render_docx(make_doc(), LOOP)
    assert descendants() == before  # the same forkserver (and resource tracker), nothing else


def test_a_killed_render_leaves_no_process_behind() -> None:
    render_docx_isolated(make_doc(), LOOP, limits=FAST)
    before = descendants()
    assert all(state != "Z" for state in before.values())
    failure: list[BaseException] = []

    def runaway() -> None:
        try:
            render_docx_isolated(make_doc(), RUNAWAY, limits=FAST)
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=runaway)
    thread.start()
    child: set[int] = set()
    while not child and thread.is_alive():
        child = set(descendants()) - set(before)
        time.sleep(0.01)
    thread.join()
    assert len(child) == 1, child  # the render ran in its own process...
    assert isinstance(failure[0], TemplateLimitExceeded)
    (pid,) = child
    assert not Path(f"/proc/{pid}").exists()  # ...which is gone, not a zombie
    assert descendants() == before
    assert ours() == []


# -- normal renders -------------------------------------------------------------------------


@pytest.mark.parametrize("template", [None, LOOP], ids=["built-in", "user"])
def test_a_normal_template_renders_byte_identically(template: bytes | None) -> None:
    assert render_docx_isolated(make_doc(), template) == render_docx(make_doc(), template)


def test_template_errors_come_back_as_they_are() -> None:
    bad = user_template("Hello {{ title }}", "{% for x in %}", "Bye")
    with pytest.raises(QuoteDocumentError) as here:
        render_docx(make_doc(), bad)
    with pytest.raises(QuoteDocumentError) as there:
        render_docx_isolated(make_doc(), bad)
    assert type(there.value) is QuoteDocumentError
    assert str(there.value) == str(here.value)
    with pytest.raises(QuoteDocumentError, match="'usd' is not an ISO 4217 code"):
        render_docx_isolated(make_doc(currency="usd"))


def test_eight_renders_in_parallel_threads_all_succeed() -> None:
    expected = {None: render_docx(make_doc()), LOOP: render_docx(make_doc(), LOOP)}
    templates = [None, LOOP] * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda t: render_docx_isolated(make_doc(), t), templates))
    assert results == [expected[t] for t in templates]
    assert ours() == []


async def test_the_event_loop_keeps_ticking_while_a_runaway_renders() -> None:
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        with pytest.raises(TemplateLimitExceeded):
            await asyncio.to_thread(render_docx_isolated, make_doc(), RUNAWAY, limits=FAST)
    finally:
        done.set()
        await tick_task
    elapsed = time.monotonic() - started
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert elapsed >= FAST.seconds
    assert len(ticks) > 0.5 * elapsed / 0.01  # at least half the ticks of an idle loop
    assert max(gaps) < 0.25


# -- the sandbox itself ---------------------------------------------------------------------


def test_a_dead_child_is_reported_as_a_crash() -> None:
    with pytest.raises(sandbox.SandboxCrashed, match="killed by SIGSEGV"):
        sandbox.run(crash)
    with pytest.raises(sandbox.SandboxCrashed, match=r"exit code 7\) without an answer"):
        sandbox.run(leave, 7)
    assert ours() == []


def test_what_the_function_raises_or_returns_wrongly_comes_back() -> None:
    with pytest.raises(TypeError, match="not_bytes returned str, not bytes"):
        sandbox.run(not_bytes)
    with pytest.raises(sandbox.SandboxCrashed, match="it failed with Unpicklable: 1/2"):
        sandbox.run(raise_unpicklable)


def test_arguments_are_checked_up_front() -> None:
    def local() -> bytes:
        return b""

    local.__module__ = "__main__"
    with pytest.raises(ValueError, match="defined in __main__"):
        sandbox.run(local)
    with pytest.raises(ValueError, match="seconds must be positive"):
        sandbox.Limits(seconds=0)
    with pytest.raises(ValueError, match="memory_mb must be positive"):
        sandbox.Limits(memory_mb=-1)


def test_the_cpu_backstop_is_named_as_a_time_limit() -> None:
    error = sandbox._death(-signal.SIGXCPU, sandbox.Limits(seconds=2.5))
    assert isinstance(error, sandbox.TimeLimitExceeded)
    assert str(error) == "it used more than 4 s of CPU time"


def test_children_do_not_run_the_parents_main_script(tmp_path: Path) -> None:
    """A parent started as a script (``dealdesk web`` is a console script) must not have each
    child re-run it: CPython 3.11's forkserver would (for dealdesk, 1.3 s of imports)."""
    script = tmp_path / "main_script.py"
    script.write_text(
        "import sys\n"
        "print('main script ran', flush=True)\n"
        "from documents.quote_document import render_docx_isolated\n"
        "from tests.test_quote_document import make_quote, user_template\n"
        "for _ in range(2):\n"  # no __main__ guard: a re-run child would start processes too
        "    assert render_docx_isolated(make_quote(), user_template('{{ title }}'))\n"
        "print('rendered', flush=True)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["main script ran", "rendered"]


# -- the services: a 422 naming the template and the limit ----------------------------------


def test_services_name_the_template_and_the_limit(sessions: sessionmaker[Session],
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quote_documents, "render_docx_isolated",
                        functools.partial(render_docx_isolated, limits=FAST))
    blobs = BlobStore(tmp_path / "blobs")
    with sessions() as s:
        admin = make_user(s, "Ad Min", "admin")
        with pytest.raises(Invalid) as refused:
            quote_documents.upload_template(s, blobs, admin, "loop.docx", RUNAWAY)
        assert refused.value.field == "file"
        assert refused.value.message.startswith(
            "loop.docx: the quote template took longer than 1 s to fill in (the time limit")
        assert s.query(QuoteTemplate).count() == 0  # nothing stored

        # A template stored before the limits existed fails at generation, named the same way.
        s.add(QuoteTemplate(name="legacy.docx", sha256=blobs.put(RUNAWAY),
                            created_by_id=admin.id))
        quote = make_quote(s, make_user(s, "Rae Rep", "rep"), make_account(s))
        s.flush()

        def never(_docx: bytes, _name: str) -> bytes:
            raise AssertionError("converted a template that never rendered")

        with pytest.raises(Invalid) as refused:
            quote_documents.generate(s, quote, admin, blobs, "Acme", never)
        assert refused.value.field == "file"
        assert refused.value.message.startswith("legacy.docx: the quote template took longer")
