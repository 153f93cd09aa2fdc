"""Work the app would otherwise do on its first requests, done before it serves.

FastAPI (0.16x) builds each included router's route table lazily, on the first request that
is matched against it: for our few hundred routes that is ~0.4 s of event-loop time, spent
inside whichever requests come first (in a burst, every other request waits behind it). One
request for a path no route matches walks every router, so they are all built at start-up.
After it, :func:`gc.freeze` moves everything loaded so far (modules, routes, templates) out
of the collector's reach: a full collection then walks only what requests create, instead of
stopping the event loop for ~0.25 s to walk the whole app.
"""

from __future__ import annotations

import gc
from typing import Any

from starlette.types import ASGIApp, Message

PATH = "/.warm-up"


async def warm(app: ASGIApp) -> None:
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "root_path": "",
        "query_string": b"", "headers": [(b"host", b"warm-up"), (b"accept", b"text/html")],
        "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0), "state": {}}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    await app(scope, receive, send)
    gc.collect()
    gc.freeze()
