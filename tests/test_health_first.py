"""/healthz answered by the HTTP protocol ahead of queued requests (web/health_first.py).

The protocol is tested under real uvicorn twice: in front of a recording ASGI app (so a test
can tell that the app never saw the health check), and in front of dealdesk itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from dealdesk.devserver import free_port
from tests.web_support import seed_people, token_client
from web.health_first import HealthFirstProtocol


class StubProbe:
    def __init__(self) -> None:
        self.status = 200

    def answer(self) -> tuple[int, bytes]:
        return self.status, json.dumps({"ok": self.status == 200}).encode()


class RecordingApp:
    """Answers every request with its path; the lifespan state carries ``probe``."""

    def __init__(self, probe: StubProbe | None) -> None:
        self.probe = probe
        self.seen: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                if self.probe is not None:
                    scope["state"]["health"] = self.probe
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.seen.append(f"{scope['method']} {scope['path']}")
        body = f"app: {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def served(app: RecordingApp) -> AsyncIterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on",
                                           log_level="warning", http=HealthFirstProtocol))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no start event
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def exchange(port: int, raw: bytes, answers: int) -> list[bytes]:
    """Send ``raw`` (pipelined requests) on one connection; the ``answers`` responses."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    out = []
    for _ in range(answers):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        out.append(head + await reader.readexactly(length))
    writer.close()
    return out


def request(method: str, path: str) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


async def test_the_protocol_answers_healthz_without_the_app() -> None:
    probe = StubProbe()
    app = RecordingApp(probe)
    async with served(app) as port:
        first, second, third = await exchange(port, request("GET", "/healthz")
                                              + request("GET", "/other")
                                              + request("GET", "/healthz"), 3)
        probe.status = 503
        (down,) = await exchange(port, request("GET", "/healthz"), 1)
        others = await exchange(port, request("POST", "/healthz")
                                + request("GET", "/healthz/more"), 2)
    for answer in (first, third):
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b'{"ok": true}')
        assert b"content-type: application/json" in answer
        assert b"x-content-type-options: nosniff" in answer
        assert b"cache-control: no-store" in answer
    assert second.endswith(b"app: /other")  # pipelined behind it, answered in order
    assert down.startswith(b"HTTP/1.1 503 ") and down.endswith(b'{"ok": false}')
    assert [a.rsplit(b"\r\n", 1)[1] for a in others] == [b"app: /healthz", b"app: /healthz/more"]
    # Only what isn't a GET of /healthz reached the app.
    assert app.seen == ["GET /other", "POST /healthz", "GET /healthz/more"]


async def test_before_the_app_has_started_healthz_goes_to_the_app() -> None:
    app = RecordingApp(None)  # no probe in the lifespan state
    async with served(app) as port:
        (answer,) = await exchange(port, request("GET", "/healthz"), 1)
    assert answer.endswith(b"app: /healthz")
    assert app.seen == ["GET /healthz"]


async def test_dealdesk_healthz_under_parallel_requests(live_url: str, sessions: Any) -> None:
    """The live app: the report as the route builds it, and 60 checks answered while 30 API
    calls run at once on the same instance."""
    people = seed_people(sessions)
    rep = await token_client(live_url, people.rep)
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as anonymous:
        for _ in range(100):  # the worker's first heartbeat
            r = await anonymous.get("/healthz")
            if r.status_code == 200:
                break
            await asyncio.sleep(0.1)
        report = r.json()
        assert r.status_code == 200, report
        assert report["ok"] and report["database"]["dialect"] in ("sqlite", "postgresql")
        assert set(report) >= {"database", "temporal", "task_queues", "tools",
                               "checked_ms_ago"}
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
        checks, calls = await asyncio.gather(
            asyncio.gather(*(anonymous.get("/healthz") for _ in range(60))),
            asyncio.gather(*(rep.get("/api/v1/quotes") for _ in range(30))))
    await rep.aclose()
    assert [c.status_code for c in checks] == [200] * 60
    assert all(c.json()["ok"] for c in checks)
    assert [c.status_code for c in calls] == [200] * 30
