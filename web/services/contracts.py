"""Contracts: a deal's approved quote made into a contract (the Common Paper Order Form by
default, or the Mutual NDA; ``documents.contract``) and sent for signature as an envelope.

:func:`send_contract` reads the deal and its quote, renders the chosen template in the
sandbox, converts it with the warm LibreOffice and hands the PDF to the envelope use case
(``web.services.envelopes.create_envelope``) with the deal and the quote linked and two
signers: the customer's (routing order 1, at ``[[sign:customer]]``) and ours (routing order
2, at ``[[sign:provider]]``; an internal user signs from their inbox). Signing it wins the
quote like any envelope sent for an approved quote: ``record_outcome`` writes the
``contracts`` row with the sealed PDF's hash, the subscription and the billing. The Mutual
NDA wins nothing: its envelope carries the deal only, and it needs no quote.

**Who may do what.** What sending an envelope for the quote needs: a role that sends
envelopes, and the quote's owner or the deal desk (for an NDA without a quote, the deal's
owner or the deal desk); the deal must be open and the quote one of its approved quotes.
A retry with the same idempotency key returns the first envelope (the key stands for the
request: deal, quote version, template, signers).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client

from dealdesk.settings import Settings
from documents import contract
from documents.contract import ContractError, ContractFacts, FeeLine, Party
from documents.convert import ConversionFailed, ConverterUnavailable
from documents.filenames import safe_filename
from store import idempotency
from store.blobs import BlobStore
from store.db import in_session
from store.deals import CLOSED
from store.models import Envelope, Quote, User
from store.subscriptions import DEFAULT_NOTICE_DAYS, DEFAULT_UPLIFT_PCT
from web.deps import off_loop
from web.errors import Conflict, Forbidden, Invalid, Unavailable
from web.params import RowId
from web.services import deals, envelopes, quote_documents
from web.services.tasks import active_user_by_email

PAYMENT_TERMS_DAYS = 30
"""Days to pay an invoice, as the quote document's standard terms say."""
SIGNER_ROLES = ("customer", "company")
"""The signers, in the order given: the customer's, then ours."""

Convert = Callable[[bytes, str], bytes]


class SignerIn(BaseModel):
    name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=255)
    title: str = Field(default="", max_length=200)


class ContractIn(BaseModel):
    template: str = Field(default=contract.DEFAULT_TEMPLATE, max_length=40,
                          description=f"one of {', '.join(contract.TEMPLATES)}")
    quote_id: RowId | None = Field(default=None, description="an approved quote of the deal "
                                   "(default: its latest approved quote)")
    signers: list[SignerIn] = Field(default_factory=list, max_length=10,
                                    description="the customer's signer, then ours")


@dataclass(frozen=True)
class _Plan:
    """What the contract is made of, read in one transaction; or the envelope an earlier
    request with the same idempotency key made."""

    earlier: int | None
    digest: str
    template: str
    deal_id: int
    quote_id: int | None
    """The quote signing it wins (an order form's; an NDA wins nothing)."""
    facts: ContractFacts | None
    company_user_id: int | None


def _check_input(body: ContractIn) -> None:
    if body.template not in contract.TEMPLATES:
        raise Invalid(f"no contract template {body.template[:40]!r}: choose "
                      f"{' or '.join(contract.TEMPLATES)}", field="template")
    if len(body.signers) != len(SIGNER_ROLES):
        raise Invalid("give two signers: the customer's signer, then the one who signs for "
                      "us", field="signers")
    for n, (s, who) in enumerate(zip(body.signers, SIGNER_ROLES, strict=True)):
        if not s.name.strip():
            raise Invalid(f"signers[{n}]: enter the {who} signer's name",
                          field=f"signers.{n}.name")
        if not s.email.strip():
            raise Invalid(f"signers[{n}]: enter the {who} signer's email address",
                          field=f"signers.{n}.email")
        if not envelopes._EMAIL.match(s.email.strip()):
            raise Invalid(f"signers[{n}]: {s.email[:100]!r} is not an email address",
                          field=f"signers.{n}.email")
        if "\x00" in s.name + s.email + s.title:
            raise Invalid(f"signers[{n}]: remove the NUL character", field=f"signers.{n}")
    if body.signers[0].email.strip().lower() == body.signers[1].email.strip().lower():
        raise Invalid("the customer's signer and ours need different email addresses",
                      field="signers.1.email")


def _quote_of(session: Session, user: User, deal_id: int, quote_id: int | None) -> Quote:
    if quote_id is None:
        found = session.scalar(select(Quote.id).where(
            Quote.deal_id == deal_id, Quote.status == "approved").order_by(Quote.id.desc())
            .limit(1))
        if found is None:
            raise Conflict(f"deal {deal_id} has no approved quote: a contract is made from "
                           "an approved quote, so get one approved first", field="quote_id")
        quote_id = found
    quote = session.get(Quote, quote_id)
    if quote is None or quote.deal_id != deal_id:
        raise Invalid(f"quote {quote_id} is not a quote of deal {deal_id}", field="quote_id")
    return envelopes.sendable_quote(session, user, quote.id)


def _plan(session: Session, user: User, deal_id: int, body: ContractIn, org_name: str,
          blobs: BlobStore, key: str | None) -> _Plan:
    if not user.roles.intersection(envelopes.CREATORS):
        raise Forbidden("your role cannot send contracts for signature")
    deal = deals.visible(session, user, deal_id)
    if deal.stage in CLOSED:
        raise Conflict(f"deal {deal.id} is {deal.stage}: a closed deal takes no new contract")
    template = contract.TEMPLATES[body.template]
    if template.wins or body.quote_id is not None:
        quote: Quote | None = _quote_of(session, user, deal.id, body.quote_id)
    else:  # an NDA needs no quote: who may send the deal's quotes may send it
        quote = None
        if not (deal.owner_id == user.id or "deal_desk" in user.roles):
            raise Forbidden(f"deal {deal.id} isn't yours: only its owner ({deal.owner.name}) "
                            "or the deal desk sends its contracts")
    signers = [s.model_dump() for s in body.signers]
    digest = idempotency.request_hash(
        "contract", body.template, str(deal.id), str(quote.id if quote else ""),
        str(quote.version if quote else ""), json.dumps(signers, sort_keys=True))
    try:
        earlier = idempotency.earlier(session, user.id, "envelope", key, digest)
    except idempotency.KeyReused as e:
        raise Invalid(str(e), field="Idempotency-Key") from None
    wins = quote.id if quote and template.wins else None
    if earlier is not None:
        return _Plan(earlier, digest, body.template, deal.id, wins, None, None)
    customer, ours = (Party(s.name.strip(), s.title.strip(), s.email.strip())
                      for s in body.signers)
    internal = active_user_by_email(session, ours.email)
    today = dt.datetime.now(dt.UTC).date()
    if quote is None:
        facts = ContractFacts(
            provider=org_name, customer=deal.account.name, reference=deal.name,
            effective=today, term_months=0, currency=deal.currency, net_total=0, lines=(),
            billing="", payment_terms_days=PAYMENT_TERMS_DAYS,
            notice_days=DEFAULT_NOTICE_DAYS, uplift_pct=DEFAULT_UPLIFT_PCT, other_changes=(),
            customer_signer=customer, provider_signer=ours)
        return _Plan(None, digest, body.template, deal.id, None, facts,
                     internal.id if internal else None)
    doc = quote_documents.document_of(session, quote, org_name, blobs)
    facts = ContractFacts(
        provider=org_name, customer=quote.account.name, reference=f"Q-{quote.id} v{quote.version}",
        effective=today, term_months=quote.term_months,
        currency=quote.currency, net_total=quote.net_amount,
        lines=tuple(FeeLine(ln.name, ln.quantity, ln.net_total) for ln in doc.lines),
        billing=quote.billing, payment_terms_days=PAYMENT_TERMS_DAYS,
        notice_days=DEFAULT_NOTICE_DAYS, uplift_pct=DEFAULT_UPLIFT_PCT,
        other_changes=tuple(str(t) for t in quote.nonstandard_terms),
        customer_signer=customer, provider_signer=ours)
    return _Plan(None, digest, body.template, deal.id, wins, facts,
                 internal.id if internal else None)


def _render(template: str, facts: ContractFacts, convert: Convert, name: str) -> bytes:
    """The contract's PDF (blocking: the sandbox's child, then LibreOffice)."""
    try:
        docx = contract.render_isolated(template, facts)
    except ContractError as e:
        raise Invalid(f"the contract can't be made: {e}", field="template") from e
    try:
        return convert(docx, name.removesuffix(".pdf") + ".docx")
    except ConversionFailed as e:
        raise Invalid(f"the contract could not be converted to PDF: {e.message}",
                      field="template") from e
    except ConverterUnavailable as e:
        raise Unavailable("the contract's PDF can't be made right now (the document "
                          "converter is not running); try again in a minute") from e


async def send_contract(session: Session, client: Client | None, settings: Settings,
                        blobs: BlobStore, user: User, deal_id: int, body: ContractIn, *,
                        convert: Convert, idempotency_key: str | None = None) -> Envelope:
    """Render the deal's contract and send it for signature; the envelope (status
    "preparing" until its workflow has added the fields and invited the customer)."""
    _check_input(body)
    plan = await in_session(session, _plan, user, deal_id, body, settings.org_name, blobs,
                            idempotency_key)
    if plan.earlier is not None:
        return await in_session(session, envelopes.get_envelope, plan.earlier)
    assert plan.facts is not None
    template = contract.TEMPLATES[plan.template]
    title = f"{template.title} {plan.facts.reference} — {plan.facts.customer}"
    name = safe_filename(f"{template.title} {plan.facts.reference}.pdf", "contract.pdf")
    pdf = await off_loop(_render, plan.template, plan.facts, convert, name)
    customer, ours = body.signers
    return await envelopes.create_envelope(
        session, client, settings, blobs, user, envelopes.EnvelopeIn(
            title=title[:200], document_name=name, document=pdf,
            message=f"Please sign the {template.title} for {plan.facts.reference}.",
            recipients=[
                envelopes.RecipientIn(customer.name.strip(), customer.email.strip(),
                                      routing_order=1, anchor=contract.CUSTOMER_ANCHOR),
                envelopes.RecipientIn(ours.name.strip(), ours.email.strip(), routing_order=2,
                                      anchor=contract.PROVIDER_ANCHOR,
                                      user_id=plan.company_user_id)],
            quote_id=plan.quote_id, deal_id=plan.deal_id,
            rendered_from_quote=plan.quote_id is not None, contract_template=plan.template,
            request_digest=plan.digest, idempotency_key=idempotency_key))
