"""Shared bench plumbing: a throw-away Temporal dev server, the live app under uvicorn,
percentiles and the machine-load note. Nothing here asserts a timing."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

from fastapi import FastAPI

from dealdesk.devserver import TemporalDevServer, free_port
from dealdesk.settings import Settings


@contextlib.contextmanager
def temp_root(prefix: str) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def temporal_server(root: Path) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(db_file=root / "temporal.db", port=free_port(),
                               http_port=free_port(), metrics_port=free_port(),
                               log_file=root / "temporal.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bench_settings(root: Path, database_url: str, temporal_address: str) -> Settings:
    port = free_port()
    return Settings(environment="test", database_url=database_url, var_dir=root / "var",
                    temporal_address=temporal_address, task_queue="bench-deals",
                    workflow_prefix="bench-", web_port=port,
                    base_url=f"http://127.0.0.1:{port}")


@contextlib.asynccontextmanager
async def live_app(settings: Settings) -> AsyncIterator[tuple[str, FastAPI]]:
    """The real app under uvicorn on ``settings.web_port`` (as tests/conftest.py live_url)."""
    import uvicorn

    from web.app import create_app
    from web.health_first import HealthFirstProtocol

    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.web_port,
                                           log_level="warning", lifespan="on",
                                           http=HealthFirstProtocol))
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn offers no start event
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield settings.base_url, app
    finally:
        server.should_exit = True
        await task


def settings_env(settings: Settings) -> dict[str, str]:
    return {**os.environ,
            "DEALDESK_ENVIRONMENT": settings.environment,
            "DEALDESK_DATABASE_URL": settings.database_url,
            "DEALDESK_VAR_DIR": str(settings.var_dir),
            "DEALDESK_TEMPORAL_ADDRESS": settings.temporal_address,
            "DEALDESK_TASK_QUEUE": settings.task_queue,
            "DEALDESK_WORKFLOW_PREFIX": settings.workflow_prefix,
            "DEALDESK_WEB_PORT": str(settings.web_port),
            "DEALDESK_BASE_URL": settings.base_url}


@contextlib.asynccontextmanager
async def deployed(settings: Settings) -> AsyncIterator[str]:
    """``dealdesk worker`` and ``dealdesk web`` as separate processes, as ``dealdesk up``
    runs them; yields the web app's URL once /healthz is green."""
    import httpx

    env = settings_env(settings)
    procs = [subprocess.Popen([sys.executable, "-m", "dealdesk", cmd],  # noqa: ASYNC220
                              env=env) for cmd in ("worker", "web")]
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{settings.base_url}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("worker/web did not become healthy")
        yield settings.base_url
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


def pct(samples: list[float], p: float) -> float:
    """Nearest-rank percentile of ``samples`` (seconds in, milliseconds out)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return 1000 * ordered[rank - 1]


def summary(label: str, samples: list[float]) -> str:
    return (f"{label:<34} n={len(samples):<4} p50={pct(samples, 50):7.2f} ms  "
            f"p95={pct(samples, 95):7.2f} ms  max={1000 * max(samples):7.2f} ms")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def machine_note(when: str) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"[{when}] cores={os.cpu_count()} loadavg(1/5/15m)={load} -- other test runs may "
            "share this machine; absolute times are noisy, ratios are the signal")


def finish(code: int = 0) -> NoReturn:
    """Exit without interpreter teardown: the Temporal SDK may abort there (PARTS.md)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
