"""Outgoing webhooks: envelope events POSTed as signed JSON, one endpoint per activity call.

Signing follows Stripe's scheme. The ``Dealdesk-Signature`` header is ``t=<unix seconds>,
v1=<hex>``, where hex is HMAC-SHA256(secret, ``f"{t}."`` + body). ``t`` is the time of the
attempt, not of the event, so a delivery retried an hour later is still fresh for the
receiver; the body is serialised once (compact, sorted keys) and is byte-identical on every
attempt; ``Dealdesk-Event-Id`` is the receiver's idempotency key. Receivers check with
:func:`verify_signature`.

The activity makes exactly one POST and leaves backoff to the Temporal retry policy. What it
raises (``ApplicationError``; ``details[0]`` is the HTTP status, or None):

- ``WebhookUnavailable`` (retryable): network error or timeout, 408, 425, 429, 5xx. A 429 or
  503 with ``Retry-After`` sets ``next_retry_delay`` (at most an hour).
- ``WebhookRejected`` (non-retryable): any other 4xx, or a redirect (we don't follow them:
  configure the final URL).
- ``WebhookEndpointUnknown`` (non-retryable): no endpoint of that name on this worker.
- ``WebhookPayloadInvalid`` (non-retryable): the event cannot be serialised.

Secrets never appear in logs, reprs or errors; nor do URLs (they may carry tokens): endpoints
are named by their ``name``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.envelope_messages import WebhookDelivery, WebhookEvent

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Dealdesk-Signature"
EVENT_ID_HEADER = "Dealdesk-Event-Id"
EVENT_TYPE_HEADER = "Dealdesk-Event-Type"
ATTEMPT_HEADER = "Dealdesk-Delivery-Attempt"

UNAVAILABLE = "WebhookUnavailable"
REJECTED = "WebhookRejected"
ENDPOINT_UNKNOWN = "WebhookEndpointUnknown"
PAYLOAD_INVALID = "WebhookPayloadInvalid"

RETRYABLE_STATUSES = frozenset({408, 425, 429})
MAX_RETRY_AFTER = dt.timedelta(hours=1)
_MAX_HEADER = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class WebhookEndpoint:
    name: str
    """Stable identifier used by workflows, logs and errors (never the URL)."""
    url: str
    """Where to POST: ``https://`` (or ``http://`` for local receivers)."""
    secret: bytes = field(repr=False)
    """HMAC key shared with the receiver (at least 16 bytes)."""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("webhook endpoint name is empty: give each endpoint a name")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook endpoint {self.name!r}: url must be http(s)://host/…")
        if len(self.secret) < 16:
            raise ValueError(f"webhook endpoint {self.name!r}: secret must be at least 16 "
                             "bytes; generate one with secrets.token_bytes(32)")

    def __repr__(self) -> str:  # the URL may carry a token, the secret is secret
        return f"WebhookEndpoint(name={self.name!r}, host={urlsplit(self.url).hostname!r})"


@dataclass(frozen=True)
class WebhookDeliveryResult:
    endpoint: str
    """Endpoint name."""
    event_id: str
    """The delivered event's id."""
    status_code: int
    """The receiver's 2xx status."""
    attempt: int
    """Activity attempt that succeeded (1 = first try)."""


def event_body(event: WebhookEvent) -> bytes:
    """The canonical JSON body: compact, sorted keys, UTF-8; same event, same bytes."""
    if event.occurred_at.tzinfo is None or event.occurred_at.utcoffset() is None:
        raise ValueError(f"event {event.id}: occurred_at is naive; pass a timezone-aware time")
    at = event.occurred_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    payload = {"id": event.id, "type": event.type, "occurred_at": at, "data": event.data}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                      allow_nan=False).encode()


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    if not secret:
        raise ValueError("webhook secret is empty")
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign_payload(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Dealdesk-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256>``."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be whole Unix seconds")
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(secret: bytes, header: str, body: bytes, *, tolerance_s: int = 300,
                     now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` (the raw request bytes) with ``secret``, made at most
    ``tolerance_s`` seconds from ``now`` (Unix seconds; default: the clock). Malformed
    headers give False. Every ``v1`` entry is compared in constant time, so a sender
    rotating its secret can send two."""
    timestamp: int | None = None
    candidates: list[bytes] = []
    if len(header) > _MAX_HEADER:
        return False
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value.encode("utf-8", "replace"))
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body).encode()
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


class WebhookActivities:
    """Webhook delivery, given the worker's endpoint list (names, URLs, secrets)."""

    def __init__(self, endpoints: Sequence[WebhookEndpoint], *, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._endpoints: dict[str, WebhookEndpoint] = {}
        for ep in endpoints:
            if ep.name in self._endpoints:
                raise ValueError(f"webhook endpoint {ep.name!r} is configured twice")
            self._endpoints[ep.name] = ep
        self._clock = clock
        # One pooled client for the worker's life; thread-safe for the activity executor.
        self._http = httpx.Client(
            transport=transport, follow_redirects=False,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            headers={"User-Agent": "dealdesk-webhooks/1"})

    def close(self) -> None:
        self._http.close()

    @activity.defn(name="deliver_webhook")
    def deliver_webhook(self, delivery: WebhookDelivery) -> WebhookDeliveryResult:
        """One signed POST of the event to one endpoint; Temporal retries what may pass."""
        ep = self._endpoints.get(delivery.endpoint)
        event = delivery.event
        if ep is None:
            raise ApplicationError(f"no webhook endpoint named {delivery.endpoint!r} on this "
                                   "worker; check the worker's webhook configuration", None,
                                   type=ENDPOINT_UNKNOWN, non_retryable=True)
        try:
            body = event_body(event)
        except (TypeError, ValueError) as e:
            raise ApplicationError(f"event {event.id} cannot be sent: {e}", None,
                                   type=PAYLOAD_INVALID, non_retryable=True) from None
        attempt = activity.info().attempt if activity.in_activity() else 1
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_payload(ep.secret, int(self._clock()), body),
            EVENT_ID_HEADER: event.id,
            EVENT_TYPE_HEADER: event.type,
            ATTEMPT_HEADER: str(attempt),
        }
        where = f"webhook {event.id} to {ep.name!r} (attempt {attempt})"
        try:
            with self._http.stream("POST", ep.url, content=body, headers=headers) as resp:
                status = resp.status_code
                excerpt = _excerpt(resp) if status >= 300 else ""
                retry_after = resp.headers.get("Retry-After")
        except httpx.HTTPError as e:
            reason = _redact(f"{type(e).__name__}: {e}", ep)
            log.warning("%s failed: %s", where, reason)
            raise ApplicationError(f"{where}: {reason}", None, type=UNAVAILABLE) from None
        if 200 <= status < 300:
            log.info("%s delivered: HTTP %d", where, status)
            return WebhookDeliveryResult(ep.name, event.id, status, attempt)
        message = f"{where}: HTTP {status}" + (f": {excerpt}" if excerpt else "")
        log.warning("%s", message)
        if status >= 500 or status in RETRYABLE_STATUSES:
            delay = _retry_after(retry_after) if status in (429, 503) else None
            raise ApplicationError(message, status, type=UNAVAILABLE, next_retry_delay=delay)
        if 300 <= status < 400:
            message += "; redirects are not followed: configure the final URL"
        raise ApplicationError(message, status, type=REJECTED, non_retryable=True)


def _excerpt(resp: httpx.Response, limit: int = 200) -> str:
    """The start of the receiver's answer, for the error; never the whole of a big body."""
    data = b""
    for chunk in resp.iter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return _CONTROL.sub(" ", data[:limit].decode("utf-8", "replace")).strip()


def _redact(text: str, ep: WebhookEndpoint) -> str:
    return text.replace(ep.url, f"<{ep.name} url>")


def _retry_after(value: str | None) -> dt.timedelta | None:
    """``Retry-After`` as seconds or an HTTP date, capped; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        delay = dt.timedelta(seconds=int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        delay = when - dt.datetime.now(dt.UTC)
    return min(max(delay, dt.timedelta(0)), MAX_RETRY_AFTER)
