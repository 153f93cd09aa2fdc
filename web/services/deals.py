"""Deals: one place for the deals pages, the API and a new quote's own deal.

A deal is what a salesperson forecasts (store/deals.py); its quotes, proposals and envelopes
hang off it, and its DealWorkflow runs their workflows as its children (``process_state``
reads its steps). What a deal waits on is read from the store: the open approval tasks of
its quotes and the envelope recipients whose turn it is. Its timeline is the audit rows of
the deal and of everything linked to it. Marking it lost tells its process, which cancels
every running step.

**Who may do what.** Reps own deals; the deal desk and admins may create them too, never an
auditor. A rep sees their own deals; approver roles, auditors and admins see all (the quotes'
rule, ``quotes.READ_ALL``). The owner, the deal desk or an admin marks a deal lost, with a
reason; a won deal can't be lost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pydantic import BaseModel, Field
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session
from temporalio.client import Client

from store import audit, idempotency, starts
from store.audit import entity
from store.db import in_session, write_lock
from store.deals import (
    CLOSED,
    FORECAST_CATEGORIES,
    STAGES,
    Deal,
    deal_workflow_id,
    forecast_of,
    tell_closed,
)
from store.models import (
    Account,
    ApprovalTask,
    AuditEvent,
    Envelope,
    EnvelopeRecipient,
    Quote,
    User,
    UserRole,
)
from store.proposals import Proposal
from store.who import Who
from web.errors import Conflict, Forbidden, Invalid, NotFound
from web.paging import PER_PAGE, Listing, Page, matching, paginate
from web.params import Amount, RowId
from web.services import quotes
from workflows.deal_messages import DealState
from workflows.rules import READ_ONLY_ROLES

WRITERS = frozenset({"rep", "deal_desk", "admin"})
CLOSERS = frozenset({"deal_desk", "admin"})
"""Who marks someone else's deal lost."""
OPEN_ENVELOPES = ("sent", "delivered")
WAITING_RECIPIENTS = ("sent", "delivered", "viewed")
MAX_REASON = 2000
TIMELINE_ROWS = 500


class DealFields(BaseModel):
    account_id: RowId
    name: str = Field(min_length=1, max_length=200)
    amount: Amount = 0
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$",
                          description="ISO 4217 code, e.g. USD")
    expected_close: dt.date | None = None


def may_write(user: User) -> bool:
    return bool(user.roles & WRITERS) and not user.roles.intersection(READ_ONLY_ROLES)


def may_close(user: User, deal: Deal) -> bool:
    """Whether this user may mark the deal lost (the page offers the form only then)."""
    return may_write(user) and (deal.owner_id == user.id or bool(user.roles & CLOSERS))


def sees(user: User, deal: Deal) -> bool:
    return deal.owner_id == user.id or sees_all(user)


def visible(session: Session, user: User, deal_id: int) -> Deal:
    """The deal if this user may read it; otherwise it doesn't exist for them (404)."""
    deal = session.get(Deal, deal_id)
    if deal is None or not sees(user, deal):
        raise NotFound(f"no deal {deal_id}")
    return deal


def create_deal(session: Session, user: User, fields: DealFields,
                idempotency_key: str | None = None) -> Deal:
    """A new deal at intake (committed by the caller); a retry with the same idempotency key
    returns the deal the first request made."""
    if not may_write(user):
        raise Forbidden("only reps, the deal desk and admins create deals")
    write_lock(session)
    digest = idempotency.request_hash(fields.model_dump_json())
    try:
        earlier = idempotency.earlier(session, user.id, "deal", idempotency_key, digest)
    except idempotency.KeyReused as e:
        raise Invalid(str(e), field="Idempotency-Key") from None
    if earlier is not None:
        return visible(session, user, earlier)
    name = fields.name.strip()
    if not name:
        raise Invalid("give the deal a name", field="name")
    if session.get(Account, fields.account_id) is None:
        raise Invalid(f"no account {fields.account_id}", field="account_id")
    deal = Deal(account_id=fields.account_id, owner_id=user.id, name=name, amount=fields.amount,
                currency=fields.currency, stage="intake", forecast_category=forecast_of("intake"),
                expected_close=fields.expected_close)
    session.add(deal)
    session.flush()
    idempotency.remember(session, user.id, "deal", idempotency_key, digest, deal.id)
    audit.append(session, event_key=f"deal-{deal.id}-created", actor=Who.user(user),
                 action="deal.created", entity=entity("deal", deal.id),
                 data=fields.model_dump(mode="json"))
    return deal


def deal_for_quote(session: Session, owner: User, quote: Quote, deal_id: int | None) -> Deal:
    """The deal a new quote belongs to: the one named (visible to its owner, of the same
    account, still open), or a new one at the quote stage named and priced after the quote."""
    if deal_id is not None:
        deal = session.get(Deal, deal_id)
        if deal is None or not sees(owner, deal):
            raise Invalid(f"no deal {deal_id}", field="deal_id")
        if deal.account_id != quote.account_id:
            raise Invalid(f"deal {deal.id} is for {deal.account.name}, not this account",
                          field="deal_id")
        if deal.stage in CLOSED:
            raise Invalid(f"deal {deal.id} is {deal.stage}: quote a new deal", field="deal_id")
        return deal
    deal = Deal(account_id=quote.account_id, owner_id=owner.id, name=quote.title,
                amount=quote.net_amount, currency=quote.currency, stage="quote",
                forecast_category=forecast_of("quote"))
    session.add(deal)
    session.flush()
    audit.append(session, event_key=f"deal-{deal.id}-created", actor=Who.user(owner),
                 action="deal.created", entity=entity("deal", deal.id),
                 data={"name": deal.name, "account_id": deal.account_id, "from_quote": True})
    return deal


def mark_lost(session: Session, user: User, deal_id: int, reason: str, *, task_queue: str,
              prefix: str) -> tuple[Deal, str]:
    """Close the deal as lost, with its reason and one audit row, and the word to its process
    (committed by the caller; the outbox key to start). Parallel calls queue on the write
    lock: the first wins, the rest find it lost (409)."""
    reason = reason.strip()
    if not reason:
        raise Invalid("say why the deal was lost", field="reason")
    if len(reason) > MAX_REASON:
        raise Invalid(f"the reason is longer than {MAX_REASON:,} characters", field="reason")
    write_lock(session)
    deal = visible(session, user, deal_id)
    if not may_close(user, deal):
        raise Forbidden(f"only the deal's owner ({deal.owner.name}), the deal desk or an admin "
                        "marks it lost")
    if deal.stage == "won" or won_quote(session, deal.id) is not None:
        raise Conflict("this deal is won: it can't be lost")
    if deal.stage == "lost":
        raise Conflict(f"this deal was already marked lost: {deal.lost_reason}")
    was = deal.stage
    deal.stage, deal.forecast_category, deal.lost_reason = "lost", forecast_of("lost"), reason
    deal.updated_at = dt.datetime.now(dt.UTC)
    audit.append(session, event_key=f"deal-{deal.id}-lost", actor=Who.user(user),
                 action="deal.lost", entity=entity("deal", deal.id),
                 data={"reason": reason, "stage": was})
    return deal, tell_closed(session, deal.id, "lost", reason, task_queue=task_queue,
                             prefix=prefix)


async def close_lost(session: Session, client: Client | None, user: User, deal_id: int,
                     reason: str, *, task_queue: str, prefix: str) -> Deal:
    """Mark the deal lost (one transaction), then tell its process at once, which cancels its
    running steps; if Temporal can't be reached now, the worker's reconciler tells it."""
    deal, key = await in_session(session, mark_lost, user, deal_id, reason,
                                 task_queue=task_queue, prefix=prefix)
    await starts.start_now(client, session, key)
    return deal


def won_quote(session: Session, deal_id: int) -> int | None:
    return session.scalar(select(Quote.id).where(Quote.deal_id == deal_id,
                                                 Quote.status == "won").limit(1))


# --- reading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DealFilter:
    """What the deals list (page or API) is narrowed to; empty means any."""

    stage: str = ""
    owner_id: int | None = None
    """Only this owner's deals (a rep sees only their own whatever this says)."""
    forecast: str = ""
    closes_after: dt.date | None = None
    """Expected to close after this day (deals without an expected close are left out)."""
    closes_before: dt.date | None = None
    q: str = ""
    """Part of the deal's or the account's name, ignoring case."""

    def check(self) -> DealFilter:
        """The filter itself, or a 422 naming the parameter that can't be met."""
        if self.stage and self.stage not in STAGES:
            raise Invalid(f"stage must be one of {', '.join(STAGES)}", field="stage")
        if self.forecast and self.forecast not in FORECAST_CATEGORIES:
            raise Invalid(f"forecast must be one of {', '.join(FORECAST_CATEGORIES)}",
                          field="forecast")
        if self.closes_after and self.closes_before and self.closes_before <= self.closes_after:
            raise Invalid("closes_before must be later than closes_after", field="closes_before")
        return self


def deals_query(user: User, f: DealFilter) -> Select[Deal]:
    """Deals this user sees, narrowed by ``f``, recently changed first."""
    query = (select(Deal).join(Account, Account.id == Deal.account_id)
             .order_by(Deal.updated_at.desc(), Deal.id.desc()))
    if not sees_all(user):
        query = query.where(Deal.owner_id == user.id)
    if f.stage:
        query = query.where(Deal.stage == f.stage)
    if f.owner_id is not None:
        query = query.where(Deal.owner_id == f.owner_id)
    if f.forecast:
        query = query.where(Deal.forecast_category == f.forecast)
    if f.closes_after is not None:
        query = query.where(Deal.expected_close > f.closes_after)
    if f.closes_before is not None:
        query = query.where(Deal.expected_close < f.closes_before)
    if f.q.strip():
        query = query.where(matching(f.q.strip(), Deal.name, Account.name))
    return query


def open_deals(session: Session, user: User, limit: int = 200) -> list[Deal]:
    """The open deals this user sees, recently changed first: what a new RFP can be for."""
    query = (select(Deal).where(Deal.stage.not_in(CLOSED))
             .order_by(Deal.updated_at.desc(), Deal.id.desc()).limit(limit))
    if not user.roles.intersection(quotes.READ_ALL):
        query = query.where(Deal.owner_id == user.id)
    return list(session.scalars(query).unique())


def list_deals(session: Session, user: User, f: DealFilter, *, page: int = 1,
               limit: int = PER_PAGE) -> Page[Deal]:
    """One page of the deals this user sees (a page past the end gives the last), and how
    many there are in all."""
    f.check()
    return paginate(session, deals_query(user, f), Listing(f.q.strip(), page), size=limit)


def sees_all(user: User) -> bool:
    """Whether this user sees every rep's deals (and may filter them by owner)."""
    return bool(user.roles.intersection(quotes.READ_ALL))


def owners(session: Session, user: User) -> list[User]:
    """The people whose deals this user may filter by: every rep and every owner of a deal,
    for those who see all; nobody otherwise."""
    if not sees_all(user):
        return []
    reps = select(UserRole.user_id).where(UserRole.role == "rep")
    owning = select(Deal.owner_id).distinct()
    return list(session.scalars(select(User).where(or_(User.id.in_(reps), User.id.in_(owning)))
                                .order_by(User.name, User.id)).unique())


@dataclass(frozen=True)
class Waiting:
    """Someone the deal waits on: ``who`` (a person or a queue), ``what``, ``since``."""

    who: str
    what: str
    since: dt.datetime | None


@dataclass(frozen=True)
class Linked:
    quotes: list[Quote]
    proposals: list[Proposal]
    envelopes: list[Envelope]

    def entities(self, deal_id: int) -> list[str]:
        return [entity("deal", deal_id), *(entity("quote", q.id) for q in self.quotes),
                *(entity("proposal", p.id) for p in self.proposals),
                *(entity("envelope", e.id) for e in self.envelopes)]


def linked(session: Session, deal: Deal) -> Linked:
    """The deal's quotes, and the proposals and envelopes of the deal or of its quotes."""
    found = list(session.scalars(select(Quote).where(Quote.deal_id == deal.id)
                                 .order_by(Quote.id)))
    quote_ids = [q.id for q in found]
    proposals = list(session.scalars(select(Proposal).where(or_(
        Proposal.deal_id == deal.id, Proposal.quote_id.in_(quote_ids))).order_by(Proposal.id)))
    envelopes = list(session.scalars(select(Envelope).where(or_(
        Envelope.deal_id == deal.id, Envelope.quote_id.in_(quote_ids))).order_by(Envelope.id)))
    return Linked(found, proposals, envelopes)


def waiting_on(session: Session, links: Linked) -> list[Waiting]:
    """Open approval tasks of the deal's quotes, and envelope recipients whose turn it is."""
    out: list[Waiting] = []
    quote_ids = [q.id for q in links.quotes]
    titles = {q.id: q.title for q in links.quotes}
    if quote_ids:
        for t in session.scalars(select(ApprovalTask).where(
                ApprovalTask.quote_id.in_(quote_ids), ApprovalTask.state == "open")
                .order_by(ApprovalTask.created_at, ApprovalTask.id)):
            who = t.assignee.name if t.assignee else f"the {t.queue_role or 'approver'} queue"
            out.append(Waiting(who, f"{t.step_name} approval of {titles[t.quote_id]!r}",
                               t.created_at))
    open_envelopes = {e.id: e.title for e in links.envelopes if e.status in OPEN_ENVELOPES}
    if open_envelopes:
        for r in session.scalars(select(EnvelopeRecipient).where(
                EnvelopeRecipient.envelope_id.in_(list(open_envelopes)),
                EnvelopeRecipient.role != "cc",
                EnvelopeRecipient.status.in_(WAITING_RECIPIENTS))
                .order_by(EnvelopeRecipient.sent_at, EnvelopeRecipient.id)):
            verb = "approve" if r.role == "approver" else "sign"
            out.append(Waiting(r.name, f"{verb} {open_envelopes[r.envelope_id]!r}", r.sent_at))
    return out


def timeline(session: Session, deal_id: int, links: Linked) -> list[AuditEvent]:
    """The audit rows of the deal and what hangs off it, oldest first."""
    names = [spelling for name in links.entities(deal_id)
             for spelling in audit.entity_spellings(name)]
    return list(session.scalars(select(AuditEvent).where(AuditEvent.entity.in_(names))
                                .order_by(AuditEvent.id).limit(TIMELINE_ROWS)))


STATE_TIMEOUT = dt.timedelta(seconds=3)


async def process_state(client: Client | None, prefix: str, deal_id: int) -> DealState | None:
    """The deal's process as it answers its ``state`` query; None when it hasn't started (the
    first step starts it) or Temporal doesn't answer in time."""
    if client is None:
        return None
    handle = client.get_workflow_handle(deal_workflow_id(prefix, deal_id))
    try:
        answer = await handle.query("state", result_type=DealState, rpc_timeout=STATE_TIMEOUT)
    except Exception:  # not started, unreachable, a failed query: the caller shows none
        return None
    return answer if isinstance(answer, DealState) else None
