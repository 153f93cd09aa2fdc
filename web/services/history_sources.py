"""Where a deal's workflow histories come from: Temporal, while it keeps them.

A deal's workflows are its DealWorkflow and, through the child-workflow events of each
history, every step it ran and what those started in turn (an envelope's billing). Each is
read once, by id, newest run; the walk stops at :data:`MAX_WORKFLOWS`. A workflow Temporal
no longer has (retention) or can't answer for is left out: the timeline then shows the audit
rows alone for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any

from temporalio.client import Client

from store.deals import deal_workflow_id

log = logging.getLogger(__name__)
MAX_WORKFLOWS = 200
FETCH_TIMEOUT = dt.timedelta(seconds=5)


def children(history: dict[str, Any]) -> list[str]:
    """The workflow ids this history started as children."""
    return [ev["childWorkflowExecutionStartedEventAttributes"]["workflowExecution"]["workflowId"]
            for ev in history.get("events", [])
            if "childWorkflowExecutionStartedEventAttributes" in ev]


async def _fetch(client: Client, workflow_id: str) -> dict[str, Any] | None:
    try:
        found = await client.get_workflow_handle(workflow_id).fetch_history(
            rpc_timeout=FETCH_TIMEOUT)
    except Exception as e:  # deleted, never started, unreachable: nothing to show
        log.info("no history for %s: %s", workflow_id, e)
        return None
    history: dict[str, Any] = json.loads(await asyncio.to_thread(found.to_json))
    return history


async def deal_histories(client: Client | None, prefix: str, deal_id: int
                         ) -> list[tuple[str, dict[str, Any]]]:
    """``(workflow id, history as JSON)`` for the deal's process and everything under it."""
    if client is None:
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    wave, seen = [deal_workflow_id(prefix, deal_id)], set[str]()
    while wave and len(seen) < MAX_WORKFLOWS:
        wave = [w for w in dict.fromkeys(wave) if w not in seen][:MAX_WORKFLOWS - len(seen)]
        seen.update(wave)
        found = await asyncio.gather(*(_fetch(client, w) for w in wave))
        nxt: list[str] = []
        for workflow_id, history in zip(wave, found, strict=True):
            if history is not None:
                out.append((workflow_id, history))
                nxt += children(history)
        wave = nxt
    return out
