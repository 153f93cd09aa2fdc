"""Issuing a won deal's invoices: the schedule from the quote, and one invoice per
installment with the next number of a gap-free sequence.

Gap-free and never duplicated: the number is taken from ``invoice_sequences`` in the same
transaction that inserts the invoice (and its audit row), and the row is locked for that
transaction (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's writers are serialised by
``BEGIN IMMEDIATE``). A rollback gives the number back. An installment already invoiced is
returned as it is, so retries are harmless.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cpq.billing import PAYMENT_TERMS_DAYS, Charge, Installment, schedule, tax_amount
from store import audit
from store.audit import entity
from store.catalogs import load_spec
from store.commerce import Invoice, InvoiceSequence, QuoteItem
from store.db import write_lock
from store.deals import CLOSED, Deal, forecast_of
from store.models import Quote
from store.who import Who

PROCESS = "worker:issue_invoice"


def charges_of(session: Session, quote: Quote) -> list[Charge]:
    """One charge per configured item (its net total), or the quote's net total."""
    items = session.scalars(select(QuoteItem).where(
        QuoteItem.quote_id == quote.id, QuoteItem.version == quote.version)
        .order_by(QuoteItem.position)).all()
    if not items:
        return [Charge(quote.title, 1, quote.net_amount)]
    charges = []
    for it in items:
        top = it.priced["lines"][0]
        extra = " (configured)" if len(it.priced["lines"]) > 1 else ""
        charges.append(Charge(f"{top['name']}{extra}", int(top["quantity"]), it.net_total))
    return charges


def plan(session: Session, quote: Quote) -> list[Installment]:
    won = (quote.won_at or dt.datetime.now(dt.UTC)).date()
    return schedule(charges_of(session, quote), quote.billing, quote.term_months, won)


def win(session: Session, quote: Quote, actor: Who, **via: object) -> list[Installment]:
    """An approved quote won, with its one audit row (``quote-{id}-won``), whichever path
    wins it: a person marking it won, or its signed envelope (``via`` says which). Winning a
    won deal changes nothing. Its deal, unless closed as lost meanwhile, is won too. Returns
    its billing plan. In the caller's transaction."""
    if quote.status == "approved":
        quote.status, quote.won_at = "won", dt.datetime.now(dt.UTC)
    deal = session.get(Deal, quote.deal_id) if quote.deal_id is not None else None
    if deal is not None and deal.stage not in CLOSED:
        deal.stage, deal.forecast_category = "won", forecast_of("won")
        deal.updated_at = dt.datetime.now(dt.UTC)
    installments = plan(session, quote)
    audit.append(session, event_key=f"quote-{quote.id}-won", actor=actor, action="quote.won",
                 entity=entity("quote", quote.id),
                 data={"version": quote.version, "billing": quote.billing,
                       "installments": [i.issue_on.isoformat() for i in installments], **via})
    return installments


def issue(session: Session, quote_id: int, installment: int) -> Invoice:
    """The installment's invoice, issued now if it wasn't yet (commits)."""
    write_lock(session)
    existing = session.scalar(select(Invoice).where(Invoice.quote_id == quote_id,
                                                    Invoice.installment == installment))
    if existing is not None:
        session.commit()
        return existing
    quote = session.get(Quote, quote_id)
    if quote is None or quote.status != "won":
        raise LookupError(f"quote {quote_id} is not a won deal")
    installments = plan(session, quote)
    inst = installments[installment - 1]
    loaded = load_spec(session, quote.catalog_version)
    rates = loaded[1].taxes.get(quote.account.region, []) if loaded else []
    taxes = [{"name": f"{r.name} {r.pct.normalize()}%", "rate_pct": str(r.pct),
              "base": inst.subtotal, "amount": tax_amount(inst.subtotal, Decimal(r.pct))}
             for r in rates]
    tax = sum(t["amount"] for t in taxes)  # type: ignore[misc]
    issued = dt.datetime.now(dt.UTC).date()
    seq = session.scalar(select(InvoiceSequence).where(
        InvoiceSequence.name == f"INV-{issued.year}").with_for_update())
    if seq is None:
        seq = InvoiceSequence(name=f"INV-{issued.year}", next_value=1)
        session.add(seq)
    number = seq.next_value
    seq.next_value += 1
    invoice = Invoice(
        number=f"INV-{issued.year}-{number:06d}", seq=issued.year * 1_000_000 + number,
        quote_id=quote.id, quote_version=quote.version, installment=installment,
        account_id=quote.account_id, issued=issued,
        due=issued + dt.timedelta(days=PAYMENT_TERMS_DAYS), currency=quote.currency,
        subtotal=inst.subtotal, tax=tax, total=inst.subtotal + tax, status="issued",
        document={"lines": [list(ln) for ln in inst.lines], "taxes": taxes,
                  "label": inst.label,
                  "schedule": [{"index": i.index, "label": i.label,
                                "issue_on": i.issue_on.isoformat(), "subtotal": i.subtotal}
                               for i in installments]})
    session.add(invoice)
    session.flush()
    audit.append(session, event_key=f"invoice-{quote.id}-{installment}",
                 actor=Who.system(PROCESS), action="invoice.issued",
                 entity=entity("invoice", invoice.number),
                 data={"number": invoice.number, "quote": entity("quote", quote.id),
                       "installment": installment, "total": invoice.total,
                       "currency": invoice.currency})
    session.commit()
    return invoice
