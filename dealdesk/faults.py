"""Crash points for fault-injection tests.

``DEALDESK_CRASH_AT=submit:after-commit`` makes the process die on the spot (as a SIGKILL
would: no cleanup, no response) when it reaches :func:`crash_point` with that name, so a test
can prove that a crash between two steps leaves nothing stuck and nothing duplicated. Several
names may be given, comma-separated. Never honoured in production.
"""

from __future__ import annotations

import os


def crash_point(name: str) -> None:
    wanted = os.environ.get("DEALDESK_CRASH_AT", "")
    if wanted and name in wanted.split(",") \
            and os.environ.get("DEALDESK_ENVIRONMENT") != "production":
        os._exit(137)
