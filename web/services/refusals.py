"""Mapping a workflow Update's refusal to the error a person sees."""

from __future__ import annotations

import datetime as dt
from typing import Any

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from web.errors import AppError, Conflict, Forbidden, Invalid, NotFound, Unavailable
from workflows import approval_chain as chain
from workflows import renewal_messages as renewal

_BY_TYPE: dict[str, type[AppError]] = {
    chain.UNKNOWN_TASK: NotFound,
    chain.NOT_ALLOWED: Forbidden,
    chain.TASK_CLOSED: Conflict,
    chain.STALE_VERSION: Conflict,
    chain.CHAIN_CLOSED: Conflict,
    chain.COMMENT_REQUIRED: Invalid,
    renewal.INVALID: Invalid,
    renewal.ENDED: Conflict,
}


def refusal_error(e: WorkflowUpdateFailedError) -> AppError:
    cause = e.cause
    if isinstance(cause, ApplicationError) and cause.type in _BY_TYPE:
        field = "comment" if cause.type == chain.COMMENT_REQUIRED else None
        return _BY_TYPE[cause.type](cause.message, field=field)
    return Conflict(f"the approval chain refused the change: {cause}")


UPDATE_TIMEOUT = dt.timedelta(seconds=30)
"""How long a click waits for its workflow to take an Update. A worker killed mid-task is
replaced and picks the workflow up within seconds (the crash probe, killing the worker every
4-8 s, measures a median of 0.2-0.5 s and a p95 of 10-13 s); a workflow whose worker stays
gone (or whose workflow task keeps failing) answers 503 "try again" instead of holding the
request."""


def temporal_unavailable(e: RPCError) -> Unavailable:
    """Temporal could not take the request (unreachable, overloaded, timed out): a 503 to
    retry, never a 500."""
    return Unavailable(f"the workflow service is unavailable ({e.message or e.status}); "
                       "try again in a moment")


async def execute_update(client: Client, workflow_id: str, update: object, arg: object, *,
                         ended: str, service: str) -> Any:
    """A person's Update on a workflow, its failures mapped to what they see: the
    validator's refusal, ``ended`` (409) for a workflow that is gone, 503 when Temporal or
    the ``service`` doesn't answer in time."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.execute_update(update, arg,  # type: ignore[call-overload]
                                           rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as e:
        raise refusal_error(e) from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise Conflict(ended) from None
        raise temporal_unavailable(e) from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise Unavailable(f"the {service} did not answer in time; reload in a moment to see "
                          "whether your decision went through") from None
