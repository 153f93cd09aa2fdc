"""Activities of BillingWorkflow: issue an installment's invoice and render its PDF."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from cpq.billing import tax_amount
from documents.invoice import InvoiceDocument, InvoiceLine, ScheduleRow, TaxLine, render_invoice
from store import invoicing
from store.blobs import BlobStore
from store.commerce import Invoice
from store.db import write_lock
from workflows.billing import IssueInvoiceInput


class BillingActivities:
    def __init__(self, sessions: sessionmaker[Session], blobs: BlobStore, org_name: str) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._org_name = org_name

    @activity.defn(name="issue_invoice")
    def issue_invoice(self, inp: IssueInvoiceInput) -> str:
        """Idempotent: an installment already invoiced keeps its number; a missing PDF is
        rendered again."""
        with self._sessions() as s:
            invoice = invoicing.issue(s, inp.quote_id, inp.installment)
            if invoice.pdf_sha256 is None:
                pdf = render_invoice(invoice_document(s, invoice, self._org_name))
                sha = self._blobs.put(pdf)
                write_lock(s)
                s.refresh(invoice)
                invoice.pdf_sha256 = sha
                s.commit()
            return invoice.number


def invoice_document(session: Session, invoice: Invoice, org_name: str) -> InvoiceDocument:
    doc = invoice.document
    issued = {i.installment: i.number for i in session.scalars(select(Invoice).where(
        Invoice.quote_id == invoice.quote_id))}
    rates = [Decimal(t["rate_pct"]) for t in doc["taxes"]]
    schedule = [ScheduleRow(row["label"], dt.date.fromisoformat(row["issue_on"]),
                            row["subtotal"] + sum(tax_amount(row["subtotal"], r) for r in rates),
                            issued.get(row["index"])) for row in doc["schedule"]]
    return InvoiceDocument(
        org_name=org_name, org_address=[], number=invoice.number, issued=invoice.issued,
        due=invoice.due, bill_to=[invoice.account.name, f"Region: {invoice.account.region}"],
        quote_ref=f"Quote Q-{invoice.quote_id} v{invoice.quote_version}",
        currency=invoice.currency,
        lines=[_line(d, q, a) for d, q, a in doc["lines"]],
        subtotal=invoice.subtotal,
        taxes=[TaxLine(t["name"], Decimal(t["rate_pct"]), t["base"], t["amount"])
               for t in doc["taxes"]],
        total=invoice.total, schedule=schedule,
        notes=f"{doc['label']}. Payment due within 30 days of the invoice date.")


def _line(description: str, quantity: int, amount: int) -> InvoiceLine:
    """Quantity × unit price when the amount divides evenly, else one line of the amount."""
    if quantity > 0 and amount % quantity == 0:
        return InvoiceLine(description, quantity, amount // quantity, amount)
    return InvoiceLine(f"{description} × {quantity}", 1, amount, amount)
