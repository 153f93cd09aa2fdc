"""Invoices: one invoice as a PDF, and the invoice list as CSV for the finance team.

``render_invoice(doc)`` turns an :class:`InvoiceDocument` into A4 PDF bytes: seller, bill-to,
dates, the quote it bills, the lines, subtotal, one row per tax, the total, and the deal's whole
billing schedule, so the customer sees where this invoice sits among the instalments. The same
document always gives the same bytes (reportlab's invariant mode, the PDF dated at the issue
date), so re-rendering an issued invoice reproduces the file that was sent.

``invoices_csv(rows)`` is RFC 4180 CSV for spreadsheets. Text cells that a spreadsheet would
run as a formula (leading ``=``, ``+``, ``-``, ``@``, tab, CR) get a leading ``'``, as OWASP
advises (:mod:`documents.csv_cells`); amounts are plain decimals in major units, which no
spreadsheet evaluates.

Money is integer minor units plus an ISO 4217 code; :func:`minor_exponent` knows how many
decimals each currency has and :func:`format_money` prints it (both reused elsewhere).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

# The certificate's embedded fonts, page numbering, table look and build lock, borrowed so both
# documents look alike; the lock must be the same one, as reportlab's font state is global.
from cpq.money import MoneyError, format_money, major, minor_exponent
from documents.csv_cells import text_cell
from documents.pdf_common import (
    ACCENT,
    BUILD_LOCK,
    DEJAVU_DIR,
    INK,
    MUTED,
    RULE,
    Fonts,
    fit,
    grid,
    load_fonts,
    numbered_canvas,
    text,
)

CSV_HEADER = ("number", "issued", "due", "account", "quote", "currency", "subtotal", "tax",
              "total", "status")


class InvoiceError(ValueError):
    """The input cannot make a truthful invoice; the message names the field and the fix."""


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    """What is billed, e.g. ``"WS-9 Workstation (configured) — year 1 of 3"``; wraps."""
    quantity: int
    """Units billed."""
    unit_price: int
    """Price of one unit, in minor units."""
    amount: int
    """Line total in minor units, as priced (discounts included), before tax."""


@dataclass(frozen=True)
class TaxLine:
    name: str
    """Shown as is, e.g. ``"VAT (DE) 19%"``; the rate is added if the name lacks it."""
    rate_pct: Decimal
    """Rate in percent, e.g. ``Decimal("19")``."""
    base: int
    """Taxed amount in minor units."""
    amount: int
    """Tax in minor units, already rounded."""


@dataclass(frozen=True)
class ScheduleRow:
    label: str
    """Instalment, e.g. ``"Year 2 of 3 (annual in advance)"``."""
    due: dt.date
    """When the instalment falls due."""
    amount: int
    """Instalment in minor units, tax included."""
    invoice_number: str | None
    """The invoice that billed it, or None while it is only scheduled."""


@dataclass(frozen=True)
class InvoiceDocument:
    org_name: str
    """The seller, as it appears at the top and in every footer."""
    org_address: list[str]
    """Seller's address lines; may be empty."""
    number: str
    """Invoice number, e.g. ``"INV-2026-000042"``; also the PDF's title."""
    issued: dt.date
    """Issue date; also the PDF's creation date."""
    due: dt.date
    """Payment due date (not before ``issued``)."""
    bill_to: list[str]
    """Account name first, then address lines or region."""
    quote_ref: str
    """The accepted quote this invoice bills, e.g. ``"Quote Q-12 v2"``."""
    currency: str
    """ISO 4217 code for every amount in the document."""
    lines: list[InvoiceLine]
    """At least one; printed in order."""
    subtotal: int
    """Sum of the line amounts (checked)."""
    taxes: list[TaxLine]
    """One row each under the subtotal; may be empty."""
    total: int
    """Subtotal plus every tax (checked)."""
    schedule: list[ScheduleRow]
    """The deal's whole billing schedule (may be one row); the section is left out if empty."""
    notes: str = ""
    """Free text after the schedule, e.g. payment instructions; line breaks are kept."""


@dataclass(frozen=True)
class InvoiceListRow:
    number: str
    issued: dt.date
    due: dt.date
    account: str
    quote_ref: str
    currency: str
    subtotal: int
    """Minor units, like ``tax`` and ``total``."""
    tax: int
    total: int
    status: str
    """``"issued"``, ``"paid"`` or ``"void"``."""



# --- PDF ------------------------------------------------------------------------------------

def render_invoice(doc: InvoiceDocument) -> bytes:
    """The invoice as A4 PDF bytes; identical documents give identical bytes."""
    _check(doc)
    with BUILD_LOCK:
        fonts = load_fonts(DEJAVU_DIR)
        buf = io.BytesIO()
        pdf = BaseDocTemplate(
            buf, pagesize=A4, leftMargin=16 * mm, rightMargin=16 * mm, topMargin=20 * mm,
            bottomMargin=18 * mm, initialFontName=fonts.regular, invariant=1,
            pageCompression=1, lang="en", title=f"Invoice {doc.number}",
            author=doc.org_name, subject=doc.quote_ref,
            creator="dealdesk invoice", producer="dealdesk", keywords=[doc.number])
        frame = Frame(pdf.leftMargin, pdf.bottomMargin, pdf.width, pdf.height, id="body",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        pdf.addPageTemplates([PageTemplate(id="page", frames=[frame],
                                           onPage=_page_decorator(doc, fonts))])
        issued = dt.datetime.combine(doc.issued, dt.time(), dt.UTC)
        pdf.build(_story(doc, fonts, pdf.width), canvasmaker=numbered_canvas(fonts, issued))
        return buf.getvalue()


def _check(doc: InvoiceDocument) -> None:
    if not doc.number.strip():
        raise InvoiceError("number is empty: pass the invoice number, e.g. 'INV-2026-000042'")
    if doc.due < doc.issued:
        raise InvoiceError(f"due ({doc.due}) is before issued ({doc.issued}): fix the terms")
    if not doc.bill_to or not doc.bill_to[0].strip():
        raise InvoiceError("bill_to is empty: start it with the account name")
    try:
        minor_exponent(doc.currency)
    except MoneyError as e:
        raise InvoiceError(str(e)) from None
    if not doc.lines:
        raise InvoiceError("lines is empty: an invoice bills at least one line")
    lines_sum = sum(line.amount for line in doc.lines)
    if doc.subtotal != lines_sum:
        raise InvoiceError(f"subtotal is {doc.subtotal} but the lines add up to {lines_sum}: "
                           "pass their sum")
    expected = doc.subtotal + sum(tax.amount for tax in doc.taxes)
    if doc.total != expected:
        raise InvoiceError(f"total is {doc.total} but subtotal plus taxes is {expected}: "
                           "pass their sum")


def _styles(f: Fonts) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=f.regular, fontSize=9, leading=12, textColor=INK)
    return {
        "seller": ParagraphStyle("seller", base, fontName=f.bold, fontSize=12, leading=15),
        "title": ParagraphStyle("title", base, fontName=f.bold, fontSize=22, leading=26,
                                textColor=ACCENT, alignment=TA_RIGHT),
        "right": ParagraphStyle("right", base, alignment=TA_RIGHT),
        "key": ParagraphStyle("key", base, fontName=f.bold, fontSize=8, leading=11,
                              textColor=MUTED),
        "h2": ParagraphStyle("h2", base, fontName=f.bold, fontSize=11, leading=14,
                             textColor=ACCENT, spaceBefore=14, spaceAfter=5),
        "cell": ParagraphStyle("cell", base, fontSize=8, leading=10),
        "num": ParagraphStyle("num", base, fontSize=8, leading=10, alignment=TA_RIGHT),
        "strong": ParagraphStyle("strong", base, fontName=f.bold, fontSize=10, leading=13,
                                 alignment=TA_RIGHT),
        "head": ParagraphStyle("head", base, fontName=f.bold, fontSize=8, leading=10,
                               textColor=colors.white),
        "headnum": ParagraphStyle("headnum", base, fontName=f.bold, fontSize=8, leading=10,
                                  textColor=colors.white, alignment=TA_RIGHT),
    }


def _lines_of(values: Iterable[str], limit: int = 300) -> str:
    return "<br/>".join(text(v, limit) for v in values)


def _story(doc: InvoiceDocument, f: Fonts, width: float) -> list[Any]:
    st = _styles(f)

    def money(amount: int) -> str:
        return format_money(amount, doc.currency)

    plain = TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                        ("FONTNAME", (0, 0), (-1, -1), f.regular),
                        ("LEFTPADDING", (0, 0), (-1, -1), 0),
                        ("RIGHTPADDING", (0, 0), (-1, -1), 0)])
    seller = [Paragraph(text(doc.org_name), st["seller"]),
              Paragraph(_lines_of(doc.org_address), st["cell"])]
    heading = [Paragraph("INVOICE", st["title"]), Paragraph(text(doc.number), st["right"])]
    top = Table([[seller, heading]], colWidths=[width * 0.6, width * 0.4], style=plain)

    def kv(key: str, value: str) -> list[Paragraph]:
        return [Paragraph(key, st["key"]), Paragraph(value, st["cell"])]

    facts = Table([kv("Invoice number", text(doc.number)), kv("Issue date", str(doc.issued)),
                   kv("Due date", str(doc.due)), kv("Quote", text(doc.quote_ref)),
                   kv("Currency", doc.currency)], colWidths=[28 * mm, 50 * mm], style=plain)
    bill_to = [Paragraph("BILL TO", st["key"]),
               Paragraph(f"<b>{text(doc.bill_to[0])}</b>", st["cell"]),
               Paragraph(_lines_of(doc.bill_to[1:]), st["cell"])]
    parties = Table([[bill_to, facts]], colWidths=[width - 78 * mm, 78 * mm], style=plain)

    fixed = [16 * mm, 34 * mm, 36 * mm]
    rows: list[list[Any]] = [[Paragraph("Description", st["head"]),
                              Paragraph("Qty", st["headnum"]),
                              Paragraph("Unit price", st["headnum"]),
                              Paragraph("Amount", st["headnum"])]]
    for line in doc.lines:
        rows.append([Paragraph(text(line.description, 1500), st["cell"]),
                     Paragraph(f"{line.quantity:,}", st["num"]),
                     Paragraph(money(line.unit_price), st["num"]),
                     Paragraph(money(line.amount), st["num"])])
    line_table = grid(rows, [width - sum(fixed), *fixed], f.regular)

    sums: list[list[Any]] = [[Paragraph("Subtotal", st["right"]),
                              Paragraph(money(doc.subtotal), st["right"])]]
    for tax in doc.taxes:
        rate = f"{tax.rate_pct.normalize():f}%"
        named = re.search(rf"(?<![\d.]){re.escape(rate)}", tax.name)  # not "9%" in "19%"
        label = text(tax.name) + ("" if named else f" {rate}")
        sums.append([Paragraph(f'{label}<br/><font size="7" color="#5b6675">on '
                               f"{money(tax.base)}</font>", st["right"]),
                     Paragraph(money(tax.amount), st["right"])])
    sums.append([Paragraph("Total", st["strong"]), Paragraph(money(doc.total), st["strong"])])
    totals = Table(sums, colWidths=[64 * mm, 40 * mm], hAlign="RIGHT", style=TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("FONTNAME", (0, 0), (-1, -1), f.regular),
        ("LINEABOVE", (0, -1), (-1, -1), 0.75, ACCENT),
        ("TOPPADDING", (0, -1), (-1, -1), 5), ("RIGHTPADDING", (0, 0), (-1, -1), 4)]))

    story: list[Any] = [top, Spacer(1, 8 * mm), parties, Spacer(1, 8 * mm), line_table,
                        Spacer(1, 3 * mm), KeepTogether([totals])]
    if doc.schedule:
        story += [CondPageBreak(30 * mm), Paragraph("Billing schedule", st["h2"]),
                  _schedule(doc, st, f, width)]
    if doc.notes.strip():
        story += [Paragraph("Notes", st["h2"]),
                  Paragraph(_lines_of(doc.notes.strip().splitlines(), 10_000), st["cell"])]
    return story


def _schedule(doc: InvoiceDocument, st: dict[str, ParagraphStyle], f: Fonts,
              width: float) -> Table:
    fixed = [22 * mm, 34 * mm, 56 * mm]
    rows: list[list[Any]] = [[Paragraph("Instalment", st["head"]), Paragraph("Due", st["head"]),
                              Paragraph("Amount (incl. tax)", st["headnum"]),
                              Paragraph("Invoice", st["head"])]]
    for row in doc.schedule:
        if row.invoice_number is None:
            invoice = '<font color="#5b6675">scheduled</font>'
        elif row.invoice_number == doc.number:  # the customer is reading this one
            invoice = f"<b>{text(row.invoice_number)}</b> (this invoice)"
        else:
            invoice = text(row.invoice_number)
        rows.append([Paragraph(text(row.label), st["cell"]),
                     Paragraph(str(row.due), st["cell"]),
                     Paragraph(format_money(row.amount, doc.currency), st["num"]),
                     Paragraph(invoice, st["cell"])])
    return grid(rows, [width - sum(fixed), *fixed], f.regular)


def _page_decorator(doc: InvoiceDocument, f: Fonts) -> Callable[[Canvas, Any], None]:
    # The certificate's canvas class adds "Page n of m" on the right once the count is known.
    footer = f"{doc.org_name} · Invoice {doc.number}"

    def decorate(canvas: Canvas, pdf: Any) -> None:
        w, _ = pdf.pagesize
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(pdf.leftMargin, 12 * mm, w - pdf.rightMargin, 12 * mm)
        canvas.setFont(f.regular, 8)
        canvas.setFillColor(MUTED)
        canvas.drawString(pdf.leftMargin, 8 * mm, fit(footer, f.regular, 8, pdf.width * 0.7))
        canvas.restoreState()

    return decorate


# --- CSV ------------------------------------------------------------------------------------

def invoices_csv(rows: Iterable[InvoiceListRow]) -> str:
    """The invoice list as RFC 4180 CSV (CRLF line ends, header row first)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow([
            text_cell(r.number), r.issued.isoformat(), r.due.isoformat(), text_cell(r.account),
            text_cell(r.quote_ref), r.currency, major(r.subtotal, r.currency, ""),
            major(r.tax, r.currency, ""), major(r.total, r.currency, ""), text_cell(r.status)])
    return buf.getvalue()
