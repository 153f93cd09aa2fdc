"""Long-running processes: the worker, with a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from temporalio.client import Client

from dealdesk.housekeeping import Housekeeping
from dealdesk.parts import tree_head_signer
from dealdesk.settings import Settings
from dealdesk.worker import build_worker, open_converter
from store.db import make_engine, make_session_factory

log = logging.getLogger("dealdesk.worker")


async def connect(settings: Settings, attempts: int = 60) -> Client:
    for attempt in range(attempts):
        try:
            return await Client.connect(settings.temporal_address,
                                        namespace=settings.temporal_namespace)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def run_worker(settings: Settings, *, standby: Path | None = None) -> None:
    """Poll until SIGINT/SIGTERM. With ``standby`` (a file to create once ready) the process
    loads and connects everything, says so by creating the file, and waits for SIGUSR1 before
    it polls: ``dealdesk up`` keeps such a warm spare and swaps it in when its worker dies,
    so workflows wait a second for a worker instead of a whole start-up."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    client = await connect(settings)
    converter = open_converter(settings)
    worker = build_worker(client, settings, sessions, converter=converter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if standby is not None and not await _stand_by(standby, stop):
        await asyncio.to_thread(converter.close)
        engine.dispose()
        return
    housekeeping = asyncio.create_task(
        Housekeeping(client, sessions, settings.task_queue, settings.base_url,
                     settings.workflow_prefix, sign_head=tree_head_signer(settings)).run())
    try:
        async with worker:
            log.info("polling task queue %r on %s", settings.task_queue,
                     settings.temporal_address)
            await stop.wait()
            log.info("stopping")
    finally:
        housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeping
        await asyncio.to_thread(converter.close)
        engine.dispose()


async def _stand_by(ready: Path, stop: asyncio.Event) -> bool:
    """Wait for SIGUSR1 (True: go and poll) or a stop (False)."""
    go = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    await asyncio.to_thread(_touch, ready)  # the supervisor's sign that this spare is ready
    log.info("standing by: everything is loaded; SIGUSR1 starts polling")
    waits = [asyncio.create_task(go.wait()), asyncio.create_task(stop.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    return go.is_set() and not stop.is_set()


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
