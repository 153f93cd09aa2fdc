"""Inputs, results and update payloads of EnvelopeWorkflow, as frozen dataclasses.
Documents travel as SHA-256 references to the blob store, never as bytes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

RecipientRole = Literal["signer", "approver", "cc"]
AuthMethod = Literal["none", "access_code", "email_otp"]
EnvelopeStatus = Literal["preparing", "sent", "completed", "declined", "voided", "expired",
                         "failed"]


@dataclass(frozen=True)
class RecipientSpec:
    id: int
    name: str
    email: str
    role: RecipientRole
    routing_order: int
    auth_method: AuthMethod = "none"
    user_id: int | None = None
    """Set for an internal countersigner, who signs from their inbox."""


@dataclass(frozen=True)
class EnvelopeInput:
    envelope_id: int
    title: str
    sender_id: int
    sender_name: str
    recipients: list[RecipientSpec]
    expires_at: dt.datetime
    reminder_every_s: int | None = None
    """Remind whoever's turn it is every this many seconds (None: no reminders)."""
    webhooks: list[str] = field(default_factory=list)
    """Names of the configured webhook endpoints to notify."""
    certify_first: bool = True
    """The first signature certifies (False when the upload was signed before)."""


@dataclass(frozen=True)
class Client:
    """Who clicked, from where, as the web tier saw it."""

    ip: str = ""
    user_agent: str = ""
    auth_method: str = "none"


@dataclass(frozen=True)
class SignInput:
    recipient_id: int
    typed_name: str
    client: Client = field(default_factory=Client)
    drawn_sha256: str = ""
    """The drawn signature's PNG in the blob store, if the signer drew one."""


@dataclass(frozen=True)
class DeclineInput:
    recipient_id: int
    reason: str
    client: Client = field(default_factory=Client)


@dataclass(frozen=True)
class VoidInput:
    by_user_id: int
    by_name: str
    reason: str


@dataclass(frozen=True)
class SignResult:
    recipient_id: int
    status: str
    envelope_status: str
    document_sha256: str


@dataclass(frozen=True)
class ApplySignatureInput:
    envelope_id: int
    recipient_id: int
    input_sha256: str
    certify: bool
    typed_name: str
    client: Client
    drawn_sha256: str = ""


InviteKind = Literal["invite", "reminder", "resend"]


@dataclass(frozen=True)
class InviteInput:
    envelope_id: int
    recipient_ids: list[int]
    kind: InviteKind
    round_key: str
    """Makes the mail idempotent: the same (recipient, round_key) is sent once."""


@dataclass(frozen=True)
class OutcomeInput:
    envelope_id: int
    status: EnvelopeStatus
    reason: str = ""
    actor: str = "system"
    recipient_id: int | None = None
    final_sha256: str | None = None
    certificate_sha256: str | None = None


@dataclass(frozen=True)
class SealResult:
    final_sha256: str
    certificate_sha256: str


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    """Stable idempotency key, the same on every attempt and endpoint: ``"envelope-42:done"``."""
    type: str
    """Dotted event type, e.g. ``"envelope.completed"``."""
    occurred_at: dt.datetime
    """When the event happened (timezone-aware); sent in UTC."""
    data: dict[str, Any] = field(default_factory=dict)
    """JSON-serialisable payload: ids and facts, never document bytes."""


@dataclass(frozen=True)
class WebhookDelivery:
    endpoint: str
    """Name of a configured :class:`WebhookEndpoint`."""
    event: WebhookEvent
    """The event to send."""
