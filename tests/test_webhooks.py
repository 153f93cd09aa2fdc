"""Webhooks against a real HTTP receiver (http.server on a thread): signatures the receiver
can verify, refusal of tampered or stale requests, and retries done by a real Temporal
activity retry policy on the dev server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import pytest
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.exceptions import ActivityError, ApplicationError, RetryState
    from temporalio.worker import Worker

    from activities.webhooks import (
        EVENT_ID_HEADER,
        EVENT_TYPE_HEADER,
        SIGNATURE_HEADER,
        WebhookActivities,
        WebhookDeliveryResult,
        WebhookEndpoint,
        event_body,
        sign_payload,
        verify_signature,
    )
    from dealdesk.devserver import free_port
    from workflows.envelope_messages import WebhookDelivery, WebhookEvent

SECRET = b"whsec-test-0123456789abcdef"
EVENT = WebhookEvent(
    id="envelope-42:completed", type="envelope.completed",
    occurred_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    data={"envelope_id": 42, "title": "MSA — Zoë & Co", "signers": ["zoe@example.test"]})


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """A webhook receiver answering with ``statuses`` in turn (the last one repeats)."""

    statuses: list[int]
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def answer(self) -> int:
        return self.statuses[min(len(self.requests), len(self.statuses) - 1)]


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(*statuses: int, headers: dict[str, str] | None = None) -> Receiver:
        rec = Receiver(list(statuses), headers or {})
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    status = rec.answer()
                    rec.requests.append(Received(dict(self.headers.items()), body, status))
                reply = b'{"ok":true}' if status < 300 else b"nope\n" * 100
                self.send_response(status)
                for k, v in rec.extra_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        rec.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/dealdesk"
        return rec

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def activities_for(url: str) -> WebhookActivities:
    return WebhookActivities([WebhookEndpoint("crm", url, SECRET)], timeout_s=5)


# --- signing --------------------------------------------------------------------------------

def test_signature_round_trip_and_refusals() -> None:
    body = event_body(EVENT)
    header = sign_payload(SECRET, 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(SECRET, header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body + b" ", now=1_700_000_100)  # tampered
    assert not verify_signature(SECRET, header, body.replace(b"42", b"43"), now=1_700_000_100)
    assert not verify_signature(b"another-secret-0123456789", header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body, now=1_700_000_301)  # stale
    assert not verify_signature(SECRET, header, body, now=1_699_999_000)  # from the future
    assert verify_signature(SECRET, header, body, now=1_700_000_900, tolerance_s=1000)


@pytest.mark.parametrize("header", [
    "", "garbage", "t=1700000000", "v1=" + "0" * 64, "t=abc,v1=00", "t=-5,v1=00",
    "t=1700000000,t=1700000000,v1={sig}", "t=1700000000;v1={sig}",
    "t=" + "\u0661" * 10 + ",v1={sig}",  # non-ASCII digits
    "x" * 5000,
])
def test_malformed_headers_are_refused(header: str) -> None:
    body = event_body(EVENT)
    sig = sign_payload(SECRET, 1_700_000_000, body).split("v1=")[1]
    assert not verify_signature(SECRET, header.format(sig=sig), body, now=1_700_000_000)


def test_any_of_several_v1_signatures_verifies() -> None:
    body = event_body(EVENT)
    good = sign_payload(SECRET, 1_700_000_000, body).split("v1=")[1]
    header = f"t=1700000000,v1={'0' * 64},v0=legacy,v1={good}"
    assert verify_signature(SECRET, header, body, now=1_700_000_000)


def test_body_is_compact_sorted_json_in_utc() -> None:
    body = event_body(EVENT)
    assert body == event_body(EVENT)
    assert b" " not in body.replace("MSA — Zoë & Co".encode(), b"")
    parsed = json.loads(body)
    assert list(parsed) == sorted(parsed) and list(parsed["data"]) == sorted(parsed["data"])
    assert parsed["occurred_at"] == "2024-05-01T10:00:00Z"
    with pytest.raises(ValueError, match="naive"):
        event_body(WebhookEvent("e", "t", dt.datetime(2024, 5, 1)))


def test_endpoint_config_is_checked_and_secret_never_shown() -> None:
    ep = WebhookEndpoint("crm", "https://hooks.example.test/x?token=abc123", SECRET)
    assert SECRET.decode() not in repr(ep) and "abc123" not in repr(ep)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        WebhookEndpoint("crm", "https://hooks.example.test/", b"short")
    with pytest.raises(ValueError, match="http"):
        WebhookEndpoint("crm", "ftp://hooks.example.test/", SECRET)
    with pytest.raises(ValueError, match="configured twice"):
        WebhookActivities([ep, ep])


# --- one delivery, no Temporal --------------------------------------------------------------

def test_delivery_is_accepted_by_the_receivers_check(receiver: Callable[..., Receiver]) -> None:
    rec = receiver(204)
    acts = activities_for(rec.url)
    result = acts.deliver_webhook(WebhookDelivery("crm", EVENT))
    acts.close()
    assert result == WebhookDeliveryResult("crm", EVENT.id, 204, 1)
    (got,) = rec.requests
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers[EVENT_ID_HEADER] == EVENT.id
    assert got.headers[EVENT_TYPE_HEADER] == "envelope.completed"
    assert got.body == event_body(EVENT)
    assert verify_signature(SECRET, got.headers[SIGNATURE_HEADER], got.body)
    assert not verify_signature(SECRET, got.headers[SIGNATURE_HEADER], got.body[:-1] + b" ")


@pytest.mark.parametrize(("status", "retryable"), [
    (500, True), (502, True), (503, True), (408, True), (429, True),
    (400, False), (401, False), (404, False), (410, False), (302, False),
])
def test_status_decides_whether_temporal_retries(receiver: Callable[..., Receiver],
                                                 status: int, retryable: bool) -> None:
    rec = receiver(status, headers={"Location": "https://elsewhere.test/"})
    acts = activities_for(rec.url)
    with pytest.raises(ApplicationError) as err:
        acts.deliver_webhook(WebhookDelivery("crm", EVENT))
    acts.close()
    assert err.value.non_retryable is not retryable
    assert err.value.type == ("WebhookUnavailable" if retryable else "WebhookRejected")
    assert err.value.details == (status,)
    assert f"HTTP {status}: nope" in err.value.message and len(err.value.message) < 400


def test_retry_after_sets_the_next_delay(receiver: Callable[..., Receiver]) -> None:
    rec = receiver(429, headers={"Retry-After": "7"})
    acts = activities_for(rec.url)
    with pytest.raises(ApplicationError) as err:
        acts.deliver_webhook(WebhookDelivery("crm", EVENT))
    acts.close()
    assert err.value.next_retry_delay == timedelta(seconds=7) and not err.value.non_retryable


def test_network_error_is_retryable_and_nothing_secret_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks?token=url-token-xyz"
    acts = activities_for(url)
    with caplog.at_level(logging.DEBUG), pytest.raises(ApplicationError) as err:
        acts.deliver_webhook(WebhookDelivery("crm", EVENT))
    acts.close()
    assert err.value.type == "WebhookUnavailable" and not err.value.non_retryable
    assert err.value.__cause__ is None  # the httpx error (and its URL) stays out of history
    for text in (caplog.text, err.value.message):
        assert SECRET.decode() not in text and "url-token-xyz" not in text


def test_unknown_endpoint_is_not_retried() -> None:
    acts = activities_for("https://hooks.example.test/")
    with pytest.raises(ApplicationError) as err:
        acts.deliver_webhook(WebhookDelivery("gone", EVENT))
    acts.close()
    assert err.value.non_retryable and err.value.type == "WebhookEndpointUnknown"


# --- through a real Temporal activity retry -------------------------------------------------

@workflow.defn(name="WebhookDeliveryTest")
class DeliverWorkflow:
    @workflow.run
    async def run(self, delivery: WebhookDelivery) -> WebhookDeliveryResult:
        result: WebhookDeliveryResult = await workflow.execute_activity(
            "deliver_webhook", delivery, result_type=WebhookDeliveryResult,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100),
                                     backoff_coefficient=2.0,
                                     maximum_interval=timedelta(seconds=1),
                                     maximum_attempts=5))
        return result


@asynccontextmanager
async def webhook_worker(client: Client, acts: WebhookActivities) -> AsyncIterator[str]:
    queue = f"webhooks-{uuid.uuid4().hex[:8]}"
    worker = Worker(client, task_queue=queue, workflows=[DeliverWorkflow],
                    activities=[acts.deliver_webhook],
                    activity_executor=ThreadPoolExecutor(max_workers=2),
                    graceful_shutdown_timeout=timedelta(seconds=2))
    task = asyncio.create_task(worker.run())
    try:
        yield queue
    finally:
        try:  # as in conftest: never let a stuck shutdown hang the suite
            await asyncio.wait_for(worker.shutdown(), timeout=15)
            await asyncio.wait_for(task, timeout=5)
        except TimeoutError:
            task.cancel()
        acts.close()


async def test_500_then_200_is_delivered_once_by_temporal_retry(
        client: Client, receiver: Callable[..., Receiver]) -> None:
    rec = receiver(500, 200)
    async with webhook_worker(client, activities_for(rec.url)) as queue:
        result = await client.execute_workflow(
            DeliverWorkflow.run, WebhookDelivery("crm", EVENT),
            id=f"webhook-test-{uuid.uuid4().hex[:8]}", task_queue=queue,
            execution_timeout=timedelta(seconds=60))
    assert result == WebhookDeliveryResult("crm", EVENT.id, 200, 2)
    assert [r.status for r in rec.requests] == [500, 200]  # one successful delivery
    assert {r.headers[EVENT_ID_HEADER] for r in rec.requests} == {EVENT.id}
    assert {r.body for r in rec.requests} == {event_body(EVENT)}
    assert [r.headers["Dealdesk-Delivery-Attempt"] for r in rec.requests] == ["1", "2"]
    for r in rec.requests:  # each attempt signed afresh, each verifiable
        assert verify_signature(SECRET, r.headers[SIGNATURE_HEADER], r.body)


async def test_400_fails_without_retries(client: Client,
                                         receiver: Callable[..., Receiver]) -> None:
    rec = receiver(400)
    async with webhook_worker(client, activities_for(rec.url)) as queue:
        with pytest.raises(WorkflowFailureError) as err:
            await client.execute_workflow(
                DeliverWorkflow.run, WebhookDelivery("crm", EVENT),
                id=f"webhook-test-{uuid.uuid4().hex[:8]}", task_queue=queue,
                execution_timeout=timedelta(seconds=60))
    activity_error = err.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "WebhookRejected" and cause.non_retryable
    assert cause.details == (400,)
    assert len(rec.requests) == 1
