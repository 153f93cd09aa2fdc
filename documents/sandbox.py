"""Run one untrusted computation (a user's template render, the check of an uploaded PDF's
signatures) in a child process with a time limit and a memory limit; kill it when it overruns.

Why a process: Jinja's sandbox bounds what a template can *reach* (no ``__class__`` tricks,
no mutation, ``range`` capped at 100,000), but not what it can *spend*: two nested loops over
``range(100000)`` run for hours, ``{{ 'x' * 10**10 }}`` asks for 10 GB, and a 20 MB DOCX full of
images can take a lot of memory just to open. Inside the web process that froze the app (the
GIL, the memory). A child process can be given an address-space limit (``RLIMIT_AS``: the
allocation fails, Python raises ``MemoryError``), a CPU-time limit (``RLIMIT_CPU``: a backstop
that ends an orphaned child should its parent die) and a wall-clock limit enforced by the
parent, which kills the child with SIGKILL. Nothing the child does can hurt the caller.

How: a ``multiprocessing`` *forkserver* whose server process imports :data:`PRELOAD` (docxtpl,
python-docx, lxml, Jinja, pyHanko and the modules of ours that use them) once; every call forks
one fresh child from it (a few milliseconds, no interpreter start, no imports), runs the
function there and answers over a pipe. One child per call, so a runaway can be killed
without touching any other call. The limits are set inside the child only: a limit too low
to work in fails that child (as a memory error or a crash), never the server. The forkserver
reaps its children, so none is left behind as a zombie; the parent closes every pipe and
sentinel.

Calls are safe from many threads at once (the web app's thread pool, the worker's activity
threads) and block only the calling thread: from an event loop, use ``asyncio.to_thread``.

The arguments and the function are pickled (module-level functions, picklable data: keep big
unused payloads out); the function must return ``bytes``. What it raises is raised again in the
caller with the same type when it pickles (``QuoteDocumentError`` does), else as
:class:`SandboxCrashed`.

Errors, in one place:

    SandboxError            base class; ``str()`` says what happened, ``limit`` names it
      TimeLimitExceeded     ran longer than ``Limits.seconds`` (wall clock) or its CPU budget
      MemoryLimitExceeded   asked for more than ``Limits.memory_mb`` of address space
      SandboxCrashed        died without an answer (a signal, an exit) or could not start

One detail of CPython 3.11: a forkserver child re-runs the parent's ``__main__`` *script* before
the function (its ``__main__`` preload is broken: the server is never given the script's path).
For ``dealdesk web`` that is the console script, which imports the whole app: about 1.3 s per
call. Our children need nothing from ``__main__`` (the function lives in an importable module),
so :func:`_preparation_data` leaves the main module out for our processes, by name; every
other process keeps the standard behaviour.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from multiprocessing import spawn
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any

PRELOAD = ("jinja2", "jinja2.sandbox", "lxml.etree", "docx", "docxtpl",
           "documents.quote_document", "documents.verify", "documents.intake",
           "documents.assembly")
"""Imported once by the forkserver, so children start with them loaded (template renders,
``documents.verify.check_integrity``). Each adds to every child's address space."""

NICE = 10
"""A child yields the CPU to its parent (the web app's event loop, the worker): untrusted
work is never urgent."""
_NAME = "dealdesk-sandbox"
_inside = False  # True in a sandbox child: run() then calls in place (no nested children)
_OK, _RAISED, _MEMORY = b"ok", b"raised", b"memory"
_JOIN_TIMEOUT = 5.0  # after SIGKILL the forkserver reports the exit within milliseconds


@dataclass(frozen=True)
class Limits:
    """What one call may spend."""

    seconds: float = 10.0
    """Wall-clock time from the child's start to its answer. The child also gets
    ``ceil(seconds) + 1`` s of CPU time (``RLIMIT_CPU``), which ends it even if the parent
    dies first."""
    memory_mb: int = 512
    """Address space of the child (``RLIMIT_AS``), including the ~100 MB of virtual memory
    Python and the preloaded libraries already take."""

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"seconds must be positive, not {self.seconds!r}")
        if not self.memory_mb > 0:
            raise ValueError(f"memory_mb must be positive, not {self.memory_mb!r}")


class SandboxError(Exception):
    """The call ended without an answer; ``limit`` is "time", "memory" or "crashed"."""

    limit = "crashed"

    def __init__(self, message: str, limits: Limits) -> None:
        super().__init__(message)
        self.limits = limits

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.limits)


class TimeLimitExceeded(SandboxError):
    limit = "time"


class MemoryLimitExceeded(SandboxError):
    limit = "memory"


class SandboxCrashed(SandboxError):
    limit = "crashed"


def run(fn: Callable[..., bytes], *args: Any, limits: Limits | None = None) -> bytes:
    """``fn(*args)`` in a fresh child process within ``limits``; its bytes, or what it raised.

    Raises :class:`SandboxError` (a subclass) when the child overran a limit or died, and
    ValueError for a function defined in ``__main__`` (children don't load it).
    """
    if _inside:  # already isolated and limited: a check within a check runs right here
        return fn(*args)
    if getattr(fn, "__module__", None) == "__main__":
        raise ValueError(f"{getattr(fn, '__qualname__', fn)} is defined in __main__, which "
                         "the child process doesn't load: move it to an importable module")
    limits = limits or Limits()
    ctx = _context()
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(writer, fn, args, limits),
                          name=f"{_NAME}-{next(_numbers)}", daemon=True)
    try:
        try:
            with _lock:  # see _lock
                process.start()
        except OSError as e:
            raise SandboxCrashed(f"the separate process could not be started ({e})",
                                 limits) from e
        finally:
            writer.close()  # the child holds the only write end: EOF when it dies
        return _answer(reader, process, limits)
    finally:
        reader.close()


def _answer(reader: Connection, process: BaseProcess, limits: Limits) -> bytes:
    deadline = time.monotonic() + limits.seconds
    try:
        tag = _receive(reader, deadline, limits)
        payload = b"" if tag == _MEMORY else _receive(reader, deadline, limits)
    except _Timeout:
        _stop(process, grace=0)
        raise TimeLimitExceeded(f"it ran longer than {limits.seconds:g} s", limits) from None
    except EOFError:  # no answer: it died (or is dying)
        raise _death(_stop(process, grace=_JOIN_TIMEOUT), limits) from None
    except BaseException:
        _stop(process, grace=0)  # never leave a child running behind an error of ours
        raise
    _stop(process, grace=_JOIN_TIMEOUT)  # it exits by itself once it has answered
    if tag == _OK:
        return payload
    if tag == _MEMORY:
        raise MemoryLimitExceeded(f"it needed more than {limits.memory_mb} MB of memory",
                                  limits)
    error = pickle.loads(payload)  # noqa: S301 - our own child's answer
    raise error


class _Timeout(Exception):
    pass


def _receive(reader: Connection, deadline: float, limits: Limits) -> bytes:
    if not reader.poll(max(0.0, deadline - time.monotonic())):
        raise _Timeout
    return reader.recv_bytes(limits.memory_mb * 2**20)


def _stop(process: BaseProcess, *, grace: float) -> int | None:
    """Wait up to ``grace`` s for the child to end, else kill it; reap it; its exit code."""
    if grace:
        wait([process.sentinel], grace)  # only waits: the exit status is read under the lock
    with _lock:
        if process.exitcode is None:
            process.kill()
        process.join(_JOIN_TIMEOUT)
        code = process.exitcode
        if code is not None:
            process.close()
    return code


def _death(code: int | None, limits: Limits) -> SandboxError:
    if code == -signal.SIGXCPU:
        return TimeLimitExceeded(f"it used more than {math.ceil(limits.seconds) + 1} s of CPU "
                                 "time", limits)
    if code is not None and code < 0:
        try:
            how = signal.Signals(-code).name
        except ValueError:
            how = f"signal {-code}"
        hint = " (by the system: perhaps out of memory)" if code == -signal.SIGKILL else ""
        return SandboxCrashed(f"it was killed by {how}{hint}", limits)
    return SandboxCrashed(f"it ended (exit code {code}) without an answer", limits)


def _child(writer: Connection, fn: Callable[..., bytes], args: tuple[Any, ...],
           limits: Limits) -> None:
    """Runs in the child: set the limits, call, answer with a tag and a payload."""
    global _inside
    _inside = True
    out_of_memory = False
    tag, payload = _RAISED, b""
    try:
        _limit_self(limits)
        result = fn(*args)
        if not isinstance(result, bytes):
            raise TypeError(f"{getattr(fn, '__name__', fn)} returned "
                            f"{type(result).__name__}, not bytes")
        tag, payload = _OK, result
    except MemoryError:
        out_of_memory = True  # answered below, once the traceback's memory is released
    except BaseException as e:  # everything goes back to the caller
        payload = _pickled(e)
    if out_of_memory:
        tag, payload = _MEMORY, b""
    try:
        writer.send_bytes(tag)
        if tag != _MEMORY:
            writer.send_bytes(payload)
    except MemoryError:
        os._exit(3)  # the parent reports a crash; nothing else to do
    finally:
        writer.close()


def _limit_self(limits: Limits) -> None:
    os.nice(NICE)
    cpu = math.ceil(limits.seconds) + 1
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _set(resource.RLIMIT_CPU, cpu, cpu + 1)
    size = limits.memory_mb * 2**20
    _set(resource.RLIMIT_AS, size, size)


def _set(which: int, soft: int, hard: int) -> None:
    """Lower a limit (never above the current hard limit, which may already be lower)."""
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def _pickled(error: BaseException) -> bytes:
    try:
        data = pickle.dumps(error)
        pickle.loads(data)  # noqa: S301 - some exceptions pickle but can't be rebuilt
        return data
    except Exception:
        return pickle.dumps(SandboxCrashed(
            f"it failed with {type(error).__name__}: {str(error)[:500]}", Limits()))


# -- the forkserver ------------------------------------------------------------------------

# Process.start() and join() poll other processes' exit status through shared sentinels
# (multiprocessing.process._cleanup); two threads reading the same sentinel can lose an
# exit code. Starting and joining under one lock keeps our threads out of each other's way.
# Both are quick: start() only hands the arguments to the forkserver, and we join a child
# only once it has answered, died or been killed.
_lock = threading.Lock()
_numbers = count(1)
_ctx: ForkServerContext | None = None


def _context() -> ForkServerContext:
    global _ctx, _stock_preparation_data
    with _lock:
        if _ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            assert isinstance(ctx, ForkServerContext)
            ctx.set_forkserver_preload(list(PRELOAD))  # used when the server starts
            if spawn.get_preparation_data is not _preparation_data:
                _stock_preparation_data = spawn.get_preparation_data
                spawn.get_preparation_data = _preparation_data
            _ctx = ctx
        return _ctx


_stock_preparation_data = spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    """multiprocessing's start-up data for a child, without the main module for ours (see the
    module docstring)."""
    data: dict[str, Any] = _stock_preparation_data(name)
    if name.startswith(_NAME):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data
