"""A renewal quote's next step, taken for its owner by the worker: the same use cases a person
calls (``web.services.quotes.submit_quote``, ``web.services.contracts.send_contract``), so the
same rules hold.

- A renewal quote with a discount is made as a draft: it is **submitted** through the
  approval chain (as a child of its renewal deal's process).
- An approved renewal quote (made without a discount, or approved by its chain) is **sent for
  signature**: the Common Paper order form for the renewal, signed by the customer's signer of
  the contract it renews, then by the quote's owner.

``RenewalWorkflow`` calls :func:`advance_renewal_quote` right after making the quote; the
renewal deal's ``DealWorkflow`` calls :func:`advance_renewal_deal` when an approval step ends
approved. Both are idempotent: a submitted quote is not submitted again, and the contract is
sent under a fixed idempotency key, so a retry returns the first envelope.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client

from dealdesk.settings import Settings
from store.blobs import BlobStore
from store.db import in_new_session, in_session
from store.models import Quote, User
from store.subscriptions import Contract, Subscription
from web.errors import AppError, Conflict
from web.services import contracts, quotes
from workflows.deal import ADVANCE_RENEWAL_DEAL
from workflows.renewal import ADVANCE_RENEWAL_QUOTE

log = logging.getLogger("dealdesk.worker")


def _renewal_quote_id(s: Session, deal_id: int) -> int | None:
    """The deal's quote if the deal renews a subscription."""
    return s.scalar(select(Quote.id).join(
        Subscription, Subscription.renewal_quote_id == Quote.id)
        .where(Quote.deal_id == deal_id).limit(1))


def _signers(s: Session, quote: Quote, owner: User) -> list[contracts.SignerIn] | None:
    """The renewed contract's customer signer, then the quote's owner; None when the
    contract it renews named no customer signer (it was won by hand)."""
    sub = s.scalar(select(Subscription).where(Subscription.renewal_quote_id == quote.id))
    contract = s.get(Contract, sub.contract_id) if sub is not None else None
    signed = [p for p in (contract.parties if contract else []) if p.get("role") == "signer"
              and p.get("email") and p.get("email") != owner.email]
    if not signed:
        return None
    customer = signed[0]
    return [contracts.SignerIn(name=customer["name"], email=customer["email"],
                               title=customer.get("title", "")),
            contracts.SignerIn(name=owner.name, email=owner.email, title="Account Executive")]


class RenewalSteps:
    def __init__(self, client: Client, sessions: sessionmaker[Session], settings: Settings,
                 blobs: BlobStore, convert: contracts.Convert) -> None:
        self._client = client
        self._sessions = sessions
        self._settings = settings
        self._blobs = blobs
        self._convert = convert

    @activity.defn(name=ADVANCE_RENEWAL_QUOTE)
    async def advance_renewal_quote(self, quote_id: int) -> str:
        """Submit the renewal quote (a draft) or send it for signature (approved); what was
        done. Store reads run on threads, like every use case's."""
        with self._sessions() as s:
            found = await in_session(s, _load, quote_id)
            if found is None:
                return "missing"
            quote, owner, signers = found
            if quote.status == "draft":
                with contextlib.suppress(Conflict):  # submitted already (a retry)
                    await quotes.submit_quote(s, self._client, quote, owner,
                                              task_queue=self._settings.task_queue,
                                              prefix=self._settings.workflow_prefix)
                return "submitted"
            if quote.status != "approved" or quote.deal_id is None:
                return quote.status
            if signers is None:
                log.info("renewal quote %s: no customer signer known; its owner sends it",
                         quote_id)
                return "no signer"
            try:
                envelope = await contracts.send_contract(
                    s, self._client, self._settings, self._blobs, owner, quote.deal_id,
                    contracts.ContractIn(quote_id=quote.id, signers=signers),
                    convert=self._convert, idempotency_key=f"renewal-quote-{quote.id}")
            except AppError as e:
                if e.status >= 500:  # the converter is down: try again later
                    raise
                log.warning("renewal quote %s was not sent: %s", quote_id, e.message)
                return f"refused: {e.message}"
            return f"sent envelope {envelope.id}"

    @activity.defn(name=ADVANCE_RENEWAL_DEAL)
    async def advance_renewal_deal(self, deal_id: int) -> str:
        """After a deal's approval step: a renewal deal's approved quote goes for signature."""
        quote_id = await in_new_session(self._sessions, _renewal_quote_id, deal_id)
        if quote_id is None:
            return "not a renewal"
        return await self.advance_renewal_quote(quote_id)


def _load(s: Session, quote_id: int
          ) -> tuple[Quote, User, list[contracts.SignerIn] | None] | None:
    quote = s.get(Quote, quote_id)
    if quote is None:
        return None
    owner = s.get_one(User, quote.owner_id)
    return quote, owner, _signers(s, quote, owner)
