"""Contracts, subscriptions and their terms: what a won deal leaves behind, and what renews.

A deal won (``store.invoicing.win``, whichever path wins it) writes, in the same transaction,
its ``contracts`` row (the parties, the term, the sealed PDF's hash when a signed envelope won
it), a ``subscriptions`` row with its first ``subscription_terms`` row, and the start of the
subscription's RenewalWorkflow (``renewal-{subscription id}``, through ``store.starts``).

Dates: a term runs from ``start`` to ``end``, both included; it renews on ``end + 1 day``
(:func:`renews_on`), and reminders count back from that day. Amounts are minor units of the
subscription's currency; ``arr`` is the annual recurring revenue (the term's net amount per
12 months), add-ons included.
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from cpq.renewal import DEFAULT_RENEWAL_METHOD, raised
from store import audit, starts
from store.audit import entity
from store.models import Account, Base, Quote, User, utcnow
from store.who import Who
from workflows.renewal_messages import RenewalInput

TERM_END_ACTIONS = ("renew", "evergreen", "cancel")
"""At the end of a term without a signed renewal: renew for another term of the same length
(uplifted), roll over month by month (evergreen, uplifted once a year), or end."""
STATUSES = ("active", "cancelling", "churned")
"""``cancelling``: cancelled, runs to the end of its term and then churns."""
OUTCOMES = ("renewed", "auto_renewed", "churned")
"""How a term ended: a signed renewal quote, the term-end action, or no renewal."""
DEFAULT_NOTICE_DAYS = 30
DEFAULT_UPLIFT_PCT = "3"
DEFAULT_ACTION = "renew"


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by ``months`` calendar months (the 31st becomes the month's last day)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def term_end(start: dt.date, months: int) -> dt.date:
    """The last day of a term of ``months`` starting on ``start``."""
    return add_months(start, months) - dt.timedelta(days=1)


def renews_on(sub: Subscription) -> dt.date:
    return sub.term_end + dt.timedelta(days=1)


def annual(amount: int, term_months: int) -> int:
    """``amount`` over ``term_months`` as a yearly amount (minor units, rounded half up)."""
    return int((Decimal(amount) * 12 / max(term_months, 1)).to_integral_value(ROUND_HALF_UP))


def uplifted(amount: int, uplift_pct: str) -> int:
    return raised(amount, Decimal(uplift_pct))


class Contract(Base):
    """A signed (or manually won) order: who agreed to what, for how long."""

    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"), unique=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    envelope_id: Mapped[int | None] = mapped_column(ForeignKey("envelopes.id"))
    kind: Mapped[str] = mapped_column(String(30), default="order_form")
    parties: Mapped[list[Any]] = mapped_column(default=list)
    """``[{"role": "customer"|"provider", "name": ..., "email": ...}]``"""
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    term_months: Mapped[int] = mapped_column(Integer)
    sealed_sha256: Mapped[str | None] = mapped_column(String(64))
    """The signed PDF (blob store) when a signed envelope won the deal."""
    template: Mapped[str | None] = mapped_column(String(40))
    """The contract template (``documents.contract.TEMPLATES``) the signed document was
    made from; None for a deal won by hand or by a document sent as a file."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(lazy="joined")


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        # The renewals view: a window of renewing subscriptions, soonest first, for those who
        # see all and for one owner (web/services/renewals.py), read off the index.
        Index("ix_subscriptions_renewing", "status", "term_end"),
        Index("ix_subscriptions_owner_renewing", "owner_id", "status", "term_end"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), unique=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"))
    """The quote the current term was sold on."""
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    arr: Mapped[int] = mapped_column(BigInteger)
    term_number: Mapped[int] = mapped_column(Integer, default=1)
    term_start: Mapped[dt.date] = mapped_column(Date)
    term_end: Mapped[dt.date] = mapped_column(Date, index=True)
    term_months: Mapped[int] = mapped_column(Integer)
    notice_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_NOTICE_DAYS)
    term_end_action: Mapped[str] = mapped_column(String(12), default=DEFAULT_ACTION)
    uplift_pct: Mapped[str] = mapped_column(String(12), default=DEFAULT_UPLIFT_PCT)
    renewal_pricing: Mapped[str] = mapped_column(String(12), default=DEFAULT_RENEWAL_METHOD)
    """How the renewal quote prices the contracted lines: ``cpq.renewal.RENEWAL_METHODS``."""
    status: Mapped[str] = mapped_column(String(12), default="active", index=True)
    renewal_quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id"))
    """This term's renewal quote, once RenewalWorkflow made it."""
    at_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    risk_reason: Mapped[str] = mapped_column(Text, default="")
    cancel_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(lazy="joined")
    owner: Mapped[User] = relationship(lazy="joined")


class SubscriptionTerm(Base):
    """One term of a subscription: the renewal history."""

    __tablename__ = "subscription_terms"
    __table_args__ = (UniqueConstraint("subscription_id", "number"),
                      Index("ix_subscription_terms_end", "end"))
    """``end``: gross revenue retention reads the terms that ended in the last 12 months."""

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    start: Mapped[dt.date] = mapped_column(Date)
    end: Mapped[dt.date] = mapped_column(Date)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"))
    arr: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str | None] = mapped_column(String(14))
    closed_at: Mapped[dt.datetime | None] = mapped_column()


class SubscriptionAddOn(Base):
    """An add-on co-terminated with the current term: its ARR joins the subscription's, and
    its first charge is prorated to the term's end."""

    __tablename__ = "subscription_addons"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    term_number: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200))
    arr_delta: Mapped[int] = mapped_column(BigInteger)
    prorated: Mapped[int] = mapped_column(BigInteger)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    idem_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def renewal_workflow_id(prefix: str, subscription_id: int) -> str:
    return f"{prefix}renewal-{subscription_id}"


def subscribe(session: Session, quote: Quote, actor: Who, *, task_queue: str, prefix: str,
              won_on: dt.date, provider: str, envelope_id: int | None = None,
              sealed_sha256: str | None = None, template: str | None = None,
              signers: list[dict[str, str]] | None = None) -> Subscription:
    """The won quote's contract, subscription and first term, and the start of its
    RenewalWorkflow; once per quote (a second call returns the first's subscription). A won
    renewal quote records its renewal contract (from the renewal date, for its term) and
    returns the subscription it renews (RenewalWorkflow closes the term with it). In the
    caller's transaction.

    ``provider``: our organisation's name (``Settings.org_name``, from the caller: the store
    reads no settings); ``template``: the contract template the signed document was made
    from, when it was."""
    existing = session.scalar(select(Subscription).join(
        Contract, Contract.id == Subscription.contract_id).where(Contract.quote_id == quote.id))
    if existing is not None:
        return existing
    parties = [{"role": "customer", "name": quote.account.name},
               {"role": "provider", "name": provider}]
    parties += [{"role": "signer", **s} for s in signers or []]
    renewed = session.scalar(select(Subscription).where(
        Subscription.renewal_quote_id == quote.id))
    if renewed is not None:
        if session.scalar(select(Contract.id).where(Contract.quote_id == quote.id)) is None:
            start = renews_on(renewed)
            session.add(Contract(
                quote_id=quote.id, deal_id=quote.deal_id, account_id=quote.account_id,
                envelope_id=envelope_id, kind="renewal", parties=parties, start_date=start,
                end_date=term_end(start, quote.term_months), term_months=quote.term_months,
                sealed_sha256=sealed_sha256, template=template))
        return renewed
    end = term_end(won_on, quote.term_months)
    contract = Contract(quote_id=quote.id, deal_id=quote.deal_id, account_id=quote.account_id,
                        envelope_id=envelope_id, parties=parties, start_date=won_on,
                        end_date=end, term_months=quote.term_months,
                        sealed_sha256=sealed_sha256, template=template)
    session.add(contract)
    session.flush()
    sub = Subscription(account_id=quote.account_id, contract_id=contract.id,
                       deal_id=quote.deal_id, owner_id=quote.owner_id, quote_id=quote.id,
                       name=quote.title, currency=quote.currency,
                       arr=annual(quote.net_amount, quote.term_months), term_start=won_on,
                       term_end=end, term_months=quote.term_months)
    session.add(sub)
    session.flush()
    session.add(SubscriptionTerm(subscription_id=sub.id, number=1, start=won_on, end=end,
                                 quote_id=quote.id, arr=sub.arr))
    audit.append(session, event_key=f"subscription-{sub.id}-created", actor=actor,
                 action="subscription.created", entity=entity("subscription", sub.id),
                 data={"quote": quote.id, "contract": contract.id, "arr": sub.arr,
                       "term_start": won_on.isoformat(), "term_end": end.isoformat()})
    wid = renewal_workflow_id(prefix, sub.id)
    starts.enqueue(session, wid, "RenewalWorkflow", RenewalInput(sub.id, 1), task_queue)
    return sub


def mark_renewal_risk(session: Session, account_id: int, band: str, dropped: bool,
                      day: dt.date) -> None:
    """Health steers renewals: a drop into a worse band marks the account's open
    subscriptions at risk (with why); back to good clears it. In the caller's transaction."""
    subs = session.scalars(select(Subscription).where(
        Subscription.account_id == account_id, Subscription.status != "churned"))
    for sub in subs:
        if dropped and not sub.at_risk:
            sub.at_risk = True
            sub.risk_reason = f"health dropped to {band.replace('_', ' ')} on {day}"
        elif band == "good" and sub.at_risk:
            sub.at_risk, sub.risk_reason = False, ""
