"""Won deals and their invoices: mark a deal won (which starts its BillingWorkflow and makes
its contract and subscription), list invoices, export them as CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client

from dealdesk.faults import crash_point
from documents.invoice import InvoiceListRow, invoices_csv
from store import audit, starts
from store.audit import entity
from store.commerce import Invoice
from store.db import in_session, write_lock
from store.deals import tell_closed
from store.invoicing import win
from store.models import Quote, User
from store.subscriptions import renewal_workflow_id, subscribe
from store.who import Who
from web.errors import Conflict, Forbidden, Invalid, NotFound
from workflows.billing import BillingInput, BillingWorkflow, billing_workflow_id

WINNERS = ("deal_desk", "finance", "admin")
READERS = ("finance", "deal_desk", "cfo", "auditor", "admin")


def _win(session: Session, quote_id: int, actor: User, task_queue: str,
         prefix: str, org_name: str) -> list[str]:
    """The quote won, its subscription, its billing's and renewal's starts, and the word to
    its deal's process, in one transaction; their outbox keys."""
    write_lock(session)
    quote = session.get(Quote, quote_id, populate_existing=True)
    if quote is None:
        raise NotFound(f"no quote {quote_id}")
    if quote.owner_id != actor.id and not actor.roles.intersection(WINNERS):
        raise Forbidden("only the quote's owner, the deal desk or finance can mark it won")
    if quote.status not in ("approved", "won"):
        raise Conflict(f"only an approved quote can be won; this one is "
                       f"{quote.status.replace('_', ' ')}")
    # One row per won deal whichever path wins it (a signed envelope writes the same key).
    issue_dates = [i.issue_on.isoformat()
                   for i in win(session, quote, Who.user(actor), via="manual")]
    sub = subscribe(session, quote, Who.user(actor), task_queue=task_queue, prefix=prefix,
                    won_on=(quote.won_at or dt.datetime.now(dt.UTC)).date(), provider=org_name)
    wid = billing_workflow_id(prefix, quote.id)
    starts.enqueue(session, wid, BillingWorkflow.__name__, BillingInput(quote.id, issue_dates),
                   task_queue)
    keys = [wid, renewal_workflow_id(prefix, sub.id)]
    if quote.deal_id is not None:
        keys.append(tell_closed(session, quote.deal_id, "won", "", task_queue=task_queue,
                                prefix=prefix))
    return keys


async def mark_won(session: Session, client: Client | None, quote: Quote, actor: User, *,
                   task_queue: str, org_name: str, prefix: str = "") -> str:
    """Close an approved quote as won and start invoicing it; returns the workflow id.
    Idempotent: marking a won deal won again changes nothing. The billing starts right away,
    or from the worker's reconciler if Temporal can't be reached now."""
    keys = await in_session(session, _win, quote.id, actor, task_queue, prefix, org_name)
    crash_point("won:after-commit")
    for key in keys:
        await starts.start_now(client, session, key)
    return keys[0]


def visible_invoices(session: Session, user: User, limit: int = 500) -> Sequence[Invoice]:
    q = select(Invoice).order_by(Invoice.seq.desc()).limit(limit)
    if not user.roles.intersection(READERS):
        q = q.join(Quote, Quote.id == Invoice.quote_id).where(Quote.owner_id == user.id)
    return session.scalars(q).unique().all()


STATUS_CHANGES = {"issued": ("paid", "void"), "paid": (), "void": ()}
ACCOUNTANTS = ("finance", "admin")


def set_status(session: Session, invoice: Invoice, actor: User, status: str,
               note: str = "") -> None:
    """Record a payment or void an invoice; a voided invoice keeps its number (numbers are
    never reused, so the sequence stays gap-free for the auditors)."""
    if not actor.roles.intersection(ACCOUNTANTS):
        raise Forbidden("only finance can record payments or void invoices")
    if status not in STATUS_CHANGES.get(invoice.status, ()):
        raise Conflict(f"invoice {invoice.number} is {invoice.status}; it can't become "
                       f"{status}")
    if status == "void" and not note.strip():
        raise Invalid("say why the invoice is void", field="note")
    write_lock(session)
    invoice.status = status
    audit.append(session, event_key=f"invoice-{invoice.id}-{status}", actor=Who.user(actor),
                 action=f"invoice.{status}", entity=entity("invoice", invoice.number),
                 data={"number": invoice.number, "quote": entity("quote", invoice.quote_id),
                       "note": note[:500]})


def may_view(invoice: Invoice, user: User) -> bool:
    return bool(user.roles.intersection(READERS)) or invoice.quote.owner_id == user.id


def csv_of(invoices: Sequence[Invoice]) -> str:
    return invoices_csv(InvoiceListRow(
        number=i.number, issued=i.issued, due=i.due, account=i.account.name,
        quote_ref=f"Q-{i.quote_id} v{i.quote_version}", currency=i.currency,
        subtotal=i.subtotal, tax=i.tax, total=i.total, status=i.status) for i in invoices)
