"""Long-running processes: the worker, with a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from temporalio.client import Client

from dealdesk.housekeeping import Housekeeping
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


async def run_worker(settings: Settings) -> None:
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
    housekeeping = asyncio.create_task(
        Housekeeping(client, sessions, settings.task_queue).run())
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
