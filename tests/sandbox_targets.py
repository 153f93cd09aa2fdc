"""Functions for documents.sandbox tests to run in a child: a small module, so a child imports
little more than what the forkserver preloaded."""

from __future__ import annotations

import os
import signal


def crash() -> bytes:
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def leave(code: int) -> bytes:
    os._exit(code)


def not_bytes() -> bytes:
    return "text"  # type: ignore[return-value]


class Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickling passes only args: rebuild fails
        super().__init__(f"{a}/{b}")


def raise_unpicklable() -> bytes:
    raise Unpicklable(1, 2)
