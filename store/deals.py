"""Deals: the unit of work from intake to a signed contract (the use cases are in
web/services/deals.py).

A ``deals`` row is what a salesperson forecasts: an account, an owner, a name, an amount in
minor units, a stage and a forecast category. The quotes, RFPs, proposals and envelopes made
for it point at it through their nullable ``deal_id`` (older rows and stand-alone documents
have none). The deal's DealWorkflow (``dealflow-{id}``) runs its steps as child workflows and
moves the stage as they start and end; the store closes a deal (won, lost) and tells the
process through the outbox (:func:`tell_closed`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from store.models import Account, Base, User, utcnow
from store.starts import Parent, enqueue_signal
from store.who import Who
from workflows.deal_messages import CloseDeal, DealInput

STAGES = ("intake", "rfp", "quote", "approval", "proposal", "contract", "signing", "won",
          "lost")
"""In the order a deal usually moves; steps may be skipped or repeated."""
CLOSED = ("won", "lost")
FORECAST_CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")

_FORECAST_OF_STAGE = {"intake": "pipeline", "rfp": "pipeline", "quote": "pipeline",
                      "approval": "best_case", "proposal": "best_case", "contract": "commit",
                      "signing": "commit", "won": "closed", "lost": "omitted"}


def forecast_of(stage: str) -> str:
    """The forecast category a stage implies: early stages are pipeline, a deal in approval
    or with a proposal out is best case, one in contract or signing is commit."""
    return _FORECAST_OF_STAGE[stage]


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    """Minor units of ``currency``: what the deal is forecast at."""
    currency: Mapped[str] = mapped_column(String(3))
    stage: Mapped[str] = mapped_column(String(20), default="intake", index=True)
    forecast_category: Mapped[str] = mapped_column(String(20), default="pipeline")
    expected_close: Mapped[dt.date | None] = mapped_column(Date)
    lost_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(lazy="joined")
    owner: Mapped[User] = relationship(lazy="joined")


def deal_workflow_id(prefix: str, deal_id: int) -> str:
    """The deal's process: ``dealflow-{id}`` never equals a billing run's ``deal-{quote}``."""
    return f"{prefix}dealflow-{deal_id}"


def process(prefix: str, deal_id: int, renewal: bool = False) -> Parent:
    """The deal's DealWorkflow as the parent of its steps' workflows (``store.starts``)."""
    return Parent(deal_workflow_id(prefix, deal_id), "DealWorkflow",
                  DealInput(deal_id, renewal))


def step_parent(session: Session, prefix: str, deal_id: int | None,
                quote_id: int | None = None) -> Parent | None:
    """The process a step belongs to: its own deal's, else its quote's deal's; None for a
    stand-alone document (its workflow starts on its own)."""
    from store.models import Quote
    from store.subscriptions import Subscription

    if deal_id is None and quote_id is not None:
        deal_id = session.scalar(select(Quote.deal_id).where(Quote.id == quote_id))
    if deal_id is None:
        return None
    renewal = session.scalar(select(Quote.id).join(
        Subscription, Subscription.renewal_quote_id == Quote.id)
        .where(Quote.deal_id == deal_id).limit(1)) is not None
    return process(prefix, deal_id, renewal)


def tell_closed(session: Session, deal_id: int, outcome: str, reason: str, *,
                task_queue: str, prefix: str) -> str:
    """Tell the deal's process, once the caller's transaction commits, that the deal was won
    or lost (lost cancels its running steps); the outbox key to start it with."""
    key = f"{deal_workflow_id(prefix, deal_id)}:{outcome}"
    enqueue_signal(session, key, process(prefix, deal_id), "close",
                   CloseDeal(outcome, reason), task_queue)
    return key


OPEN_QUOTES = ("draft", "changes_requested", "pending_approval", "approved")
"""A quote's statuses while it may still become the deal's price (not won, not rejected)."""


def follow_quotes(session: Session, deal_id: int | None, actor: Who) -> None:
    """The deal's amount and currency become its latest open quote's net amount, unless the
    deal is closed; one ``deal.amount_changed`` audit row when they change. Called by every
    use case that edits or reprices a quote, in its transaction."""
    from store import audit  # store.audit imports store.models, which imports this module
    from store.models import Quote

    if deal_id is None:
        return
    session.flush()
    deal = session.get(Deal, deal_id)
    if deal is None or deal.stage in CLOSED:
        return
    latest = session.scalars(select(Quote).where(
        Quote.deal_id == deal_id, Quote.status.in_(OPEN_QUOTES))
        .order_by(Quote.updated_at.desc(), Quote.id.desc()).limit(1)).first()
    if latest is None or (deal.amount, deal.currency) == (latest.net_amount, latest.currency):
        return
    was = {"amount": deal.amount, "currency": deal.currency}
    now = dt.datetime.now(dt.UTC)
    deal.amount, deal.currency, deal.updated_at = latest.net_amount, latest.currency, now
    audit.append(session, event_key=f"deal-{deal_id}-amount-q{latest.id}-v{latest.version}-"
                 f"{now.timestamp()}", actor=actor, action="deal.amount_changed",
                 entity=audit.entity("deal", deal_id),
                 data={"was": was, "amount": deal.amount, "currency": deal.currency,
                       "quote_id": latest.id, "version": latest.version})
