"""``GET /healthz`` answered by the HTTP protocol itself, before requests already queued.

A load balancer takes an instance out of rotation when its health check is slow. Under a
burst the event loop has dozens of requests ready to run (each a task, run in turn), so an
ordinary /healthz waited behind all of them although its answer is in memory: the check
measured the queue, not the instance. :class:`HealthFirstProtocol` is uvicorn's httptools
protocol with one change: a ``GET /healthz`` is answered while its bytes are parsed, from the
same :meth:`HealthProbe.answer <web.routes.health.HealthProbe.answer>` the route uses, with the
same headers. Every other request, and /healthz before the app has started, takes the usual
path.

The answer never waits (no I/O but a write of a few hundred bytes to a transport that is not
paused), so it runs to completion in place. It needs the lifespan state's ``health`` entry
(web/app.py yields it).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from web.headers import ALWAYS

PATH = "/healthz"
_HEADERS = [(name.lower().encode(), value.encode())
            for name, value in (*ALWAYS, ("Cache-Control", "no-store"))]


class HealthFirstProtocol(HttpToolsProtocol):
    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        probe = self.app_state.get("health")
        scope = cycle.scope
        if (probe is None or scope["path"] != PATH or scope["method"] != "GET"
                or self.flow.write_paused):
            super()._start_asgi_task(cycle, app)
            return
        status, body = probe.answer()

        async def answer(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()), *_HEADERS]})
            await send({"type": "http.response.body", "body": body})

        step = cycle.run_asgi(answer)
        try:
            step.send(None)
        except StopIteration:
            return
        step.close()  # unreachable: nothing above waits (the transport isn't paused)
        raise RuntimeError("the /healthz answer waited")
