"""Quotes: create, edit (a new version once submitted), submit for approval, recall."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from dealdesk.faults import crash_point
from store import audit, idempotency, starts
from store.audit import entity
from store.db import write_lock
from store.deals import follow_quotes, step_parent
from store.models import Account, ApprovalRequest, ApprovalTask, Quote, QuoteVersion, User
from store.who import Who
from web.deps import in_session
from web.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from web.params import Amount, Label, Months, RowId
from web.services import configurator, deals
from web.services.policies import active_policy, spec_of
from web.services.refusals import UPDATE_TIMEOUT, refusal_error, temporal_unavailable
from workflows.approval_chain import ApprovalChainWorkflow
from workflows.messages import Actor, ChainInput, PriorApproval, QuoteFacts, RecallInput

EDITABLE = ("draft", "approved", "rejected", "changes_requested")
READ_ALL = ("sales_manager", "deal_desk", "finance", "legal", "cfo", "auditor", "admin")
"""Roles that read every quote; anyone else reads their own."""


class QuoteFields(BaseModel):
    """The approval-relevant fields of a quote; amounts in minor units (cents)."""

    account_id: RowId
    title: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD")
    list_amount: Amount = Field(default=0, description="list price total, minor units "
                                "(a configured quote's are computed from its items)")
    net_amount: Amount = Field(default=0, description="net total after discounts, minor units")
    cost_amount: Amount = Field(default=0, description="cost total, minor units")
    term_months: Months
    billing: Literal["one_time", "annual"] = Field(
        default="annual", description="once the deal is won: one invoice, or annual in advance")
    nonstandard_terms: list[Label] = Field(default_factory=list, max_length=20)
    product_families: list[Label] = Field(default_factory=list, max_length=20)
    deal_id: RowId | None = Field(default=None, description=(
        "the deal this quote is for (on create; an edit keeps the quote's deal): one you see, "
        "of the same account; without it the quote gets a deal of its own"))

    @field_validator("nonstandard_terms", "product_families")
    @classmethod
    def _clean(cls, v: list[str]) -> list[str]:
        return sorted({x.strip() for x in v if x.strip()})

    def check(self) -> None:
        if self.net_amount > self.list_amount:
            raise Invalid("net_amount cannot exceed list_amount", field="net_amount")


def actor_of(user: User) -> Actor:
    return Actor(user.id, user.name, sorted(user.roles))


def workflow_id(prefix: str, quote_id: int, version: int) -> str:
    return f"{prefix}quote-{quote_id}-v{version}"


def visible_quote(session: Session, quote_id: int, user: User) -> Quote:
    """The quote if this user may read it; otherwise it doesn't exist for them (404)."""
    quote = session.get(Quote, quote_id)
    if quote is None or not (quote.owner_id == user.id or user.roles.intersection(READ_ALL)):
        raise NotFound(f"no quote {quote_id}")
    return quote


def get_quote(session: Session, quote_id: int) -> Quote:
    quote = session.get(Quote, quote_id)
    if quote is None:
        raise NotFound(f"no quote {quote_id}")
    return quote


def facts_of(session: Session, quote: Quote) -> QuoteFacts:
    """What the policy reads. A configured quote's come from the pricing engine: the
    largest line discount, the margin over cost, the product families of its lines and the
    channel guard's conflicts."""
    families, conflicts = list(quote.product_families), list[str]()
    if quote.max_discount_pct is not None:
        configured_families, conflicts = configurator.configured_facts(session, quote)
        families = sorted({*families, *configured_families})
    return QuoteFacts(
        quote_id=quote.id, version=quote.version, title=quote.title,
        account_id=quote.account_id, account_name=quote.account.name, owner_id=quote.owner_id,
        currency=quote.currency, total=quote.net_amount, list_total=quote.list_amount,
        discount_pct=quote.discount_pct, margin_pct=quote.margin_pct,
        term_months=quote.term_months, nonstandard_terms=list(quote.nonstandard_terms),
        product_families=families, channel=quote.channel, channel_conflicts=conflicts)


def create_quote(session: Session, owner: User, fields: QuoteFields,
                 idempotency_key: str | None = None) -> Quote:
    """A new draft quote (in the caller's write transaction). A retry with the same
    idempotency key returns the quote the first request made."""
    if "rep" not in owner.roles:
        raise Forbidden("only sales reps create quotes")
    fields.check()
    digest = idempotency.request_hash(fields.model_dump_json())
    try:
        earlier = idempotency.earlier(session, owner.id, "quote", idempotency_key, digest)
    except idempotency.KeyReused as e:
        raise Invalid(str(e), field="Idempotency-Key") from None
    if earlier is not None:
        return get_quote(session, earlier)
    if session.get(Account, fields.account_id) is None:
        raise Invalid(f"no account {fields.account_id}", field="account_id")
    quote = Quote(owner_id=owner.id, **fields.model_dump(exclude={"deal_id"}))
    quote.deal_id = deals.deal_for_quote(session, owner, quote, fields.deal_id).id
    session.add(quote)
    session.flush()
    idempotency.remember(session, owner.id, "quote", idempotency_key, digest, quote.id)
    audit.append(session, event_key=f"quote-{quote.id}-created", actor=Who.user(owner),
                 action="quote.created", entity=entity("quote", quote.id),
                 data={**fields.model_dump(), "deal_id": quote.deal_id})
    return quote


def edit_quote(session: Session, quote: Quote, actor: User, fields: QuoteFields) -> Quote:
    """Change a quote. Once a version was submitted, the change becomes the next version."""
    _must_own(quote, actor)
    fields.check()
    if quote.status == "pending_approval":
        raise Conflict("this quote is waiting for approval: recall it before editing")
    if quote.status == "won":
        raise Conflict("this deal is won: its quote can't change any more")
    if session.get(Account, fields.account_id) is None:
        raise Invalid(f"no account {fields.account_id}", field="account_id")
    submitted = session.scalar(select(QuoteVersion.id).where(
        QuoteVersion.quote_id == quote.id, QuoteVersion.version == quote.version))
    if submitted is not None:
        configurator.next_version(session, quote)
    configured = quote.max_discount_pct is not None
    if configured and fields.currency != quote.currency:
        raise Invalid("a configured quote's currency can't change: its lines are priced in "
                      f"{quote.currency}", field="currency")
    for k, v in fields.model_dump(exclude={"deal_id"}).items():
        setattr(quote, k, v)
    if configured:  # the amounts of a configured quote are the engine's, not typed in
        configurator.refresh_totals(session, quote)
    quote.status = "draft"
    quote.updated_at = dt.datetime.now(dt.UTC)
    session.flush()
    audit.append(session, event_key=f"quote-{quote.id}-v{quote.version}-edit-"
                 f"{quote.updated_at.timestamp()}", actor=Who.user(actor), action="quote.edited",
                 entity=entity("quote", quote.id), data={"version": quote.version,
                                                   **fields.model_dump(exclude={"deal_id"})})
    follow_quotes(session, quote.deal_id, Who.user(actor))
    return quote


def _must_own(quote: Quote, actor: User) -> None:
    if quote.owner_id != actor.id:
        raise Forbidden(f"only the quote's owner ({quote.owner.name}) can change or submit it")


def prior_approvals(session: Session, quote: Quote) -> list[PriorApproval]:
    """Approved steps of the latest earlier version's chain, for smart re-approval."""
    req = session.scalar(select(ApprovalRequest).where(
        ApprovalRequest.quote_id == quote.id, ApprovalRequest.quote_version < quote.version)
        .order_by(ApprovalRequest.quote_version.desc()).limit(1))
    if req is None:
        return []
    out = []
    for step in req.steps:
        if step.state == "carried_over" and step.carried_from:
            out.append(PriorApproval(
                step.key, step.fingerprint, step.carried_from["decided_by"],
                dt.datetime.fromisoformat(step.carried_from["decided_at"]),
                int(step.carried_from["quote_version"]), step.carried_from["workflow_id"]))
        elif step.state == "approved" and step.completed_at is not None:
            deciders = sorted({t.decided_by.name for t in _step_tasks(session, req, step.key)
                               if t.state == "approved" and t.decided_by})
            out.append(PriorApproval(step.key, step.fingerprint, ", ".join(deciders),
                                     step.completed_at, req.quote_version, req.workflow_id))
    return out


def _step_tasks(session: Session, req: ApprovalRequest, key: str) -> list[ApprovalTask]:
    return list(session.scalars(select(ApprovalTask).where(
        ApprovalTask.request_id == req.id, ApprovalTask.step_key == key)))


def _enqueue_submission(session: Session, quote_id: int, actor: User, task_queue: str,
                        prefix: str) -> str:
    """Mark the quote's version submitted and add its chain's start, in one transaction."""
    write_lock(session)
    quote = get_quote(session, quote_id)
    session.refresh(quote)
    _must_own(quote, actor)
    if quote.status == "pending_approval":
        raise Conflict("this quote is already waiting for approval")
    if quote.status == "approved":
        raise Conflict("this version is already approved; edit the quote to make a new version")
    if quote.status == "won":
        raise Conflict("this deal is won: its quote can't change any more")
    if quote.net_amount <= 0:
        raise Invalid("the quote has no amount yet: add a product in the builder or enter "
                      "its amounts", field="net_amount")
    submitted_before = session.scalar(select(QuoteVersion.id).where(
        QuoteVersion.quote_id == quote.id, QuoteVersion.version == quote.version))
    if submitted_before is not None:
        configurator.next_version(session, quote)
    quote.status = "pending_approval"
    facts = facts_of(session, quote)
    inp = ChainInput(facts, spec_of(active_policy(session)), actor_of(actor),
                     prior_approvals(session, quote))
    wid = workflow_id(prefix, quote.id, quote.version)
    starts.enqueue(session, wid, ApprovalChainWorkflow.__name__, inp, task_queue,
                   parent=step_parent(session, prefix, quote.deal_id))
    return wid


async def submit_quote(session: Session, client: Client | None, quote: Quote, actor: User, *,
                       task_queue: str, prefix: str = "") -> str:
    """Submit this quote's version for approval; returns its chain's workflow id.

    A version is submitted once: submitting again (after a recall or a rejection) makes the
    next version, and smart re-approval carries over what still stands. The status change and
    the chain's start commit together (``store.starts``); the chain starts right after, or,
    if Temporal can't be reached now, as soon as the worker's reconciler can. The chain's first
    projection writes the frozen version, the request and its audit row.
    """
    wid = await in_session(session, _enqueue_submission, quote.id, actor, task_queue, prefix)
    crash_point("submit:after-commit")
    await starts.start_now(client, session, wid)
    return wid


async def recall_quote(session: Session, client: Client, quote: Quote, actor: User, *,
                       comment: str, prefix: str = "") -> str:
    if quote.status != "pending_approval":
        raise Conflict("this quote is not waiting for approval")
    wid = workflow_id(prefix, quote.id, quote.version)
    if not await starts.start_now(client, session, wid):
        raise Unavailable("the approval service is unavailable; try again in a minute")
    handle = client.get_workflow_handle(wid)
    try:
        result = str(await handle.execute_update(ApprovalChainWorkflow.recall,
                                                 RecallInput(actor_of(actor), comment),
                                                 rpc_timeout=UPDATE_TIMEOUT))
        crash_point("recall:after-update")
        return result
    except WorkflowUpdateFailedError as e:
        raise refusal_error(e) from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise Conflict(f"the approval chain is not running ({e.message})") from None
        raise temporal_unavailable(e) from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise Unavailable("the approval service did not answer in time; try again") from None
