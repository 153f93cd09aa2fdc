"""EnvelopeWorkflow: one per envelope (``envelope-{id}``), from sending to sealing.

Routing groups are visited in order (recipients with the same routing order form a parallel
group). Each group is invited by email; the workflow waits for every signer and approver of
the group to act through the ``sign`` Update (``decline`` ends the envelope), reminding them
on a schedule and expiring the envelope at its deadline. The sender may ``void`` it or
``remind`` at any time. After the last group the document is sealed (validation data and a
document timestamp), a certificate of completion is made and sealed, and both go to every
recipient.

Turn order is enforced here, by the Update validators, whatever link someone holds. All
writes to the envelope's PDF happen one at a time (``_pdf_lock``), even for parallel signers,
and each write is an idempotent activity keyed by its input document's hash.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from workflows.billing import BillingInput, BillingWorkflow, billing_workflow_id
    from workflows.deal_messages import CloseDeal
    from workflows.envelope_messages import (
        ApplySignatureInput,
        DeclineInput,
        EnvelopeInput,
        InviteInput,
        InviteKind,
        OutcomeInput,
        RecipientSpec,
        SealResult,
        SignInput,
        SignResult,
        VoidInput,
        WebhookDelivery,
        WebhookEvent,
    )

NOT_YOUR_TURN = "NotYourTurn"
ENVELOPE_CLOSED = "EnvelopeClosed"
ALREADY_DONE = "AlreadyDone"
REASON_REQUIRED = "ReasonRequired"
UNKNOWN_RECIPIENT = "UnknownRecipient"
DOCUMENT_REFUSED = "DocumentRefused"  # raised by prepare_envelope, never retried
CANCELLED_REASON = "the deal was closed as lost"

_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                     maximum_interval=timedelta(seconds=10))
# Short timeouts so a worker that dies mid-activity holds a click for seconds, not a minute:
# signing is well under a second; sealing and mailing a few seconds. Converting a long Word
# document may take minutes, so it heartbeats instead (a dead worker shows in seconds).
_SIGN_TIMEOUT = timedelta(seconds=10)
_SEAL_TIMEOUT = timedelta(seconds=30)
_MAIL_TIMEOUT = timedelta(seconds=30)
_PREPARE_TIMEOUT = timedelta(minutes=30)
_HEARTBEAT = timedelta(seconds=10)
# A signer waits on apply_signature: it beats between its steps (each well under a second),
# so an attempt lost with a dead worker is retried after this, not after _SIGN_TIMEOUT.
_SIGN_HEARTBEAT = timedelta(seconds=4)


def _refuse(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn
class EnvelopeWorkflow:
    @workflow.init
    def __init__(self, inp: EnvelopeInput) -> None:
        self._in = inp
        self._status = "sent"
        self._reason = ""
        self._recipients = {r.id: r for r in inp.recipients}
        self._state = {r.id: "created" for r in inp.recipients}
        self._current_order: int | None = None
        self._document = ""
        self._signed_any = False
        self._pdf_lock = asyncio.Lock()
        self._remind_now = False
        self._ended_by: OutcomeInput | None = None

    # ---------------------------------------------------------------- main line
    @workflow.run
    async def run(self, inp: EnvelopeInput) -> str:
        try:
            await self._collect(inp)
        except asyncio.CancelledError:
            # Its deal was lost: void it like a sender would, telling everyone invited.
            if self._status == "sent":
                self._end("voided", CANCELLED_REASON, OutcomeInput(
                    inp.envelope_id, "voided", CANCELLED_REASON, actor="deal process"))
        if self._status == "sent":
            try:
                await self._complete()
            except asyncio.CancelledError:  # everyone signed: it completes all the same
                await self._complete()
        else:
            await workflow.execute_activity(
                "record_outcome", self._ended_by or OutcomeInput(inp.envelope_id, "expired"),
                start_to_close_timeout=_SEAL_TIMEOUT, retry_policy=_RETRY)
            await self._webhook(f"envelope.{self._status}", {"reason": self._reason})
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    async def _collect(self, inp: EnvelopeInput) -> None:
        """Prepare the document, then visit the routing groups until everyone acted or the
        envelope ended."""
        try:
            self._document = await workflow.execute_activity(
                "prepare_envelope", inp.envelope_id, result_type=str,
                start_to_close_timeout=_PREPARE_TIMEOUT, heartbeat_timeout=_HEARTBEAT,
                retry_policy=_RETRY)
        except ActivityError as e:
            # A Word upload that LibreOffice can't convert, a missing anchor: nobody is
            # invited, and the sender learns why.
            if not (isinstance(e.cause, ApplicationError) and e.cause.type == DOCUMENT_REFUSED):
                raise
            self._end("failed", e.cause.message)
        if self._status == "sent":
            await self._webhook("envelope.sent", {})
        for order in sorted({r.routing_order for r in self._actors()}):
            if self._status != "sent":
                break
            self._current_order = order
            await self._run_group(order)

    async def _run_group(self, order: int) -> None:
        group = [r.id for r in self._actors() if r.routing_order == order]
        await self._invite(group, "invite", f"invite-{order}")
        rounds = 0
        while self._status == "sent" and not self._group_done(group):
            now = workflow.now()
            until_expiry = self._in.expires_at - now
            if until_expiry <= timedelta(0):
                self._end("expired", "the envelope expired before everyone signed")
                break
            wait = until_expiry
            if self._in.reminder_every_s:
                wait = min(wait, timedelta(seconds=self._in.reminder_every_s))
            with contextlib.suppress(TimeoutError):  # the timeout is the reminder's turn
                await workflow.wait_condition(
                    lambda: (self._status != "sent" or self._group_done(group)
                             or self._remind_now), timeout=wait)
            if self._status != "sent" or self._group_done(group):
                break
            if self._remind_now or workflow.now() < self._in.expires_at:
                kind: InviteKind = "resend" if self._remind_now else "reminder"
                self._remind_now = False
                rounds += 1
                pending = [r for r in group if self._state[r] == "sent"]
                await self._invite(pending, kind, f"{kind}-{order}-{rounds}")

    async def _complete(self) -> None:
        async with self._pdf_lock:
            sealed: SealResult = await workflow.execute_activity(
                "seal_envelope", args=[self._in.envelope_id, self._document],
                result_type=SealResult, start_to_close_timeout=_SEAL_TIMEOUT,
                retry_policy=_RETRY)
        self._document = sealed.final_sha256
        self._status = "completed"
        won: BillingInput | None = await workflow.execute_activity(
            "record_outcome", OutcomeInput(self._in.envelope_id, "completed",
                                           final_sha256=sealed.final_sha256,
                                           certificate_sha256=sealed.certificate_sha256),
            result_type=BillingInput | None,  # type: ignore[arg-type]
            start_to_close_timeout=_SEAL_TIMEOUT, retry_policy=_RETRY)
        if won is not None and workflow.patched("bill-won-deals"):
            await self._start_billing(won)
        parent = workflow.info().parent
        if won is not None and parent is not None and workflow.patched("deal-won-at-once"):
            # The store told the deal's process too (an outbox row the worker's reconciler
            # sends within seconds); a child tells its parent at once.
            with contextlib.suppress(FailureError):  # the deal's process has ended
                await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                    "close", CloseDeal("won"))
        await self._webhook("envelope.completed", {"document_sha256": sealed.final_sha256,
                                                   "certificate_sha256":
                                                   sealed.certificate_sha256})

    async def _start_billing(self, won: BillingInput) -> None:
        """The signed quote's deal is won: its invoicing runs on, on its own
        (``billing-{quote}``, with this envelope's workflow-id prefix; ``deal-{quote}`` in
        runs from before the deal process), after this workflow ends."""
        prefix = workflow.info().workflow_id.removesuffix(f"envelope-{self._in.envelope_id}")
        billing_id = (billing_workflow_id(prefix, won.quote_id)
                      if workflow.patched("billing-ids") else f"{prefix}deal-{won.quote_id}")
        # Someone may have marked the deal won by hand first: then its billing already runs.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                BillingWorkflow.run, won, id=billing_id,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON)

    async def _invite(self, recipient_ids: list[int], kind: InviteKind,
                      round_key: str) -> None:
        if not recipient_ids:
            return
        # Their turn starts now: a click racing the invitation mail is not "out of turn".
        for rid in recipient_ids:
            if self._state[rid] == "created":
                self._state[rid] = "sent"
        invite = InviteInput(self._in.envelope_id, recipient_ids, kind, round_key)
        await workflow.execute_activity(
            "invite_recipients", invite, start_to_close_timeout=_MAIL_TIMEOUT,
            retry_policy=_RETRY)

    async def _webhook(self, event_type: str, data: dict[str, object]) -> None:
        """Fire-and-forget per endpoint: a slow receiver never holds up the envelope, and
        Temporal retries each delivery with backoff."""
        event = WebhookEvent(
            id=f"{workflow.info().workflow_id}:{event_type}:{data.get('recipient_id', '')}",
            type=event_type, occurred_at=workflow.now(),
            data={"envelope_id": self._in.envelope_id, **data})
        for endpoint in self._in.webhooks:
            workflow.start_activity(
                "deliver_webhook", WebhookDelivery(endpoint, event),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1),
                                         maximum_interval=timedelta(minutes=10),
                                         maximum_attempts=20))

    # ---------------------------------------------------------------- updates
    @workflow.update
    async def sign(self, inp: SignInput) -> SignResult:
        """Apply this recipient's signature (approvers just approve); returns once it is in
        the document."""
        async with self._pdf_lock:
            self._check_turn(inp.recipient_id)  # again: another Update may have ended it
            r = self._recipients[inp.recipient_id]
            if r.role == "signer":
                self._document = await workflow.execute_activity(
                    "apply_signature", ApplySignatureInput(
                        self._in.envelope_id, r.id, self._document,
                        certify=self._in.certify_first and not self._signed_any,
                        typed_name=inp.typed_name, client=inp.client,
                        drawn_sha256=inp.drawn_sha256),
                    result_type=str, start_to_close_timeout=_SIGN_TIMEOUT,
                    heartbeat_timeout=_SIGN_HEARTBEAT, retry_policy=_RETRY)
                self._signed_any = True
            else:
                await workflow.execute_activity(
                    "record_approval", ApplySignatureInput(
                        self._in.envelope_id, r.id, self._document, certify=False,
                        typed_name=inp.typed_name, client=inp.client,
                        drawn_sha256=inp.drawn_sha256),
                    start_to_close_timeout=_SIGN_TIMEOUT, retry_policy=_RETRY)
            self._state[r.id] = "signed"
        await self._webhook("recipient.signed", {"recipient_id": r.id, "email": r.email})
        return SignResult(r.id, "signed", self._status, self._document)

    @sign.validator
    def _validate_sign(self, inp: SignInput) -> None:
        self._check_turn(inp.recipient_id)
        if not inp.typed_name.strip():
            raise _refuse("type your name to sign", REASON_REQUIRED)

    @workflow.update
    async def decline(self, inp: DeclineInput) -> SignResult:
        self._check_turn(inp.recipient_id)
        r = self._recipients[inp.recipient_id]
        self._state[r.id] = "declined"
        self._end("declined", inp.reason.strip(), OutcomeInput(
            self._in.envelope_id, "declined", inp.reason.strip(), actor=f"{r.name} <{r.email}>",
            recipient_id=r.id))
        return SignResult(r.id, "declined", self._status, self._document)

    @decline.validator
    def _validate_decline(self, inp: DeclineInput) -> None:
        self._check_turn(inp.recipient_id)
        if not inp.reason.strip():
            raise _refuse("a reason is required to decline", REASON_REQUIRED)

    @workflow.update
    def void(self, inp: VoidInput) -> str:
        self._end("voided", inp.reason.strip(), OutcomeInput(
            self._in.envelope_id, "voided", inp.reason.strip(),
            actor=f"{inp.by_name} (user {inp.by_user_id})"))
        return self._status

    @void.validator
    def _validate_void(self, inp: VoidInput) -> None:
        self._check_open()
        if not inp.reason.strip():
            raise _refuse("a reason is required to void an envelope", REASON_REQUIRED)

    @workflow.update
    def remind(self) -> int:
        """Send the current group's pending recipients a fresh link now."""
        self._remind_now = True
        return len(self._waiting_on())

    @remind.validator
    def _validate_remind(self) -> None:
        self._check_open()
        if not self._waiting_on():
            raise _refuse("nobody is waiting to be reminded", ALREADY_DONE)

    @workflow.query
    def waiting_on(self) -> list[int]:
        return self._waiting_on()

    # ---------------------------------------------------------------- helpers
    def _actors(self) -> list[RecipientSpec]:
        return [r for r in self._in.recipients if r.role in ("signer", "approver")]

    def _group_done(self, group: list[int]) -> bool:
        return all(self._state[r] == "signed" for r in group)

    def _waiting_on(self) -> list[int]:
        return [r.id for r in self._actors()
                if r.routing_order == self._current_order and self._state[r.id] == "sent"]

    def _check_open(self) -> None:
        if self._status != "sent":
            raise _refuse(f"this envelope is {self._status}", ENVELOPE_CLOSED)

    def _check_turn(self, recipient_id: int) -> None:
        r = self._recipients.get(recipient_id)
        if r is None or r.role == "cc":
            raise _refuse("this recipient does not sign this envelope", UNKNOWN_RECIPIENT)
        self._check_open()
        state = self._state[recipient_id]
        if state == "signed":
            raise _refuse(f"{r.name} has already signed", ALREADY_DONE)
        if r.routing_order != self._current_order or state != "sent":
            waiting = [self._recipients[w].name for w in self._waiting_on()]
            raise _refuse("waiting for " + (" and ".join(waiting) or "earlier recipients"),
                          NOT_YOUR_TURN)

    def _end(self, status: str, reason: str, outcome: OutcomeInput | None = None) -> None:
        self._status = status
        self._reason = reason
        self._ended_by = outcome or OutcomeInput(self._in.envelope_id, status,  # type: ignore[arg-type]
                                                 reason)
