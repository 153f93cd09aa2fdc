"""Invoices: the PDF read back with poppler (pdftotext, pdfinfo, pdffonts), the CSV read back
with the csv module, the way the finance team's spreadsheet will read it."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from cpq.money import format_money
from documents.invoice import (
    InvoiceDocument,
    InvoiceError,
    InvoiceLine,
    InvoiceListRow,
    ScheduleRow,
    TaxLine,
    invoices_csv,
    render_invoice,
)

NUMBER = "INV-2026-000042"
ISSUED = dt.date(2026, 3, 2)


def make_invoice(lines: int = 2, currency: str = "USD") -> InvoiceDocument:
    items = [InvoiceLine("WS-9 Workstation (configured) — year 1 of 3", 3, 123450, 370350),
             InvoiceLine("Onboarding for Müller & <Söhne> — " + "remote sessions, " * 12, 1,
                         99, 99)]
    for i in range(2, lines):
        items.append(InvoiceLine(f"Seat licence batch {i + 1:03d}", 10, 1500, 15000))
    items = items[:lines]
    subtotal = sum(line.amount for line in items)
    taxes = [TaxLine("VAT (DE) 19%", Decimal("19"), subtotal, subtotal * 19 // 100),
             TaxLine("Local levy", Decimal("0.5"), 370350, 1852)]
    total = subtotal + sum(t.amount for t in taxes)
    return InvoiceDocument(
        org_name="Dealdesk Demo GmbH", org_address=["Hauptstraße 1", "10115 Berlin"],
        number=NUMBER, issued=ISSUED, due=ISSUED + dt.timedelta(days=30),
        bill_to=["Zoë Ångström AB", "ul. Piotrkowska 1", "90-001 Łódź, Poland"],
        quote_ref="Quote Q-12 v2", currency=currency, lines=items, subtotal=subtotal,
        taxes=taxes, total=total,
        schedule=[ScheduleRow("Year 1 of 3 (annual in advance)", ISSUED, total, NUMBER),
                  ScheduleRow("Year 2 of 3 (annual in advance)", dt.date(2027, 3, 2), total,
                              None)],
        notes="Pay by bank transfer within 30 days.\nIBAN DE89 3704 0044 0532 0130 00")


def pdf_text(pdf: bytes, page: int | None = None) -> str:
    args = ["pdftotext", "-enc", "UTF-8", "-layout"]
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    out = subprocess.run([*args, "-", "-"], input=pdf, capture_output=True, check=True)
    return out.stdout.decode()


def pdf_tool(tool: str, pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf)
    return subprocess.run([tool, str(path)], capture_output=True, check=True, text=True).stdout


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def small_pdf() -> bytes:
    return render_invoice(make_invoice())


@pytest.fixture(scope="module")
def long_pdf() -> bytes:
    return render_invoice(make_invoice(lines=120))


# --- PDF ------------------------------------------------------------------------------------

def test_shows_parties_lines_taxes_and_total(small_pdf: bytes) -> None:
    doc = make_invoice()
    text = pdf_text(small_pdf)
    words = flat(text)
    for expected in ("Dealdesk Demo GmbH", "Hauptstraße 1", "INVOICE", NUMBER,
                     "Issue date 2026-03-02", "Due date 2026-04-01", "Quote Q-12 v2",
                     "ul. Piotrkowska 1", "Subtotal", "Total"):
        assert expected in words, expected
    # one line per invoice line: description, quantity, unit price and amount side by side
    assert re.search(r"WS-9 Workstation \(configured\) — year 1 of 3\s+3\s+USD 1,234\.50\s+"
                     r"USD 3,703\.50", text)
    assert re.search(r"Onboarding for Müller & <Söhne> — remote sessions,.*\s+1\s+USD 0\.99\s+"
                     r"USD 0\.99", text)
    assert words.count("remote") == words.count("sessions,") == 12  # wrapped, not cut
    assert re.search(r"Subtotal\s+USD 3,704\.49", text)
    assert re.search(r"VAT \(DE\) 19%\s+USD 703\.85", text)
    assert "on USD 3,704.49" in words
    assert re.search(r"Local levy 0\.5%\s+USD 18\.52", text)  # rate added to the bare name
    assert "19% 19%" not in words
    assert re.search(r"Total\s+USD 4,426\.86", text)
    assert format_money(doc.total, "USD") == "USD 4,426.86"


def test_shows_the_billing_schedule_and_notes(small_pdf: bytes) -> None:
    text = pdf_text(small_pdf)
    assert re.search(rf"Year 1 of 3 \(annual in advance\)\s+2026-03-02\s+USD 4,426\.86\s+"
                     rf"{NUMBER} \(this", text)
    assert re.search(r"Year 2 of 3 \(annual in advance\)\s+2027-03-02\s+USD 4,426\.86\s+"
                     r"scheduled", text)
    words = flat(text)
    assert "Pay by bank transfer within 30 days. IBAN DE89" in words
    assert words.index("Billing schedule") > words.index("Total") > words.index("Subtotal")


def test_non_latin_names_survive_in_an_embedded_font(small_pdf: bytes, tmp_path: Path) -> None:
    text = pdf_text(small_pdf)
    for name in ("Zoë Ångström AB", "90-001 Łódź, Poland", "Müller & <Söhne>", "Hauptstraße"):
        assert name in text
    fonts = pdf_tool("pdffonts", small_pdf, tmp_path)
    rows = [line.split() for line in fonts.splitlines()[2:]]
    assert rows and all(r[-5] == "yes" for r in rows)  # every font embedded
    assert any("DejaVuSans" in r[0] for r in rows)


def test_metadata_title_and_date(small_pdf: bytes, tmp_path: Path) -> None:
    info = pdf_tool("pdfinfo", small_pdf, tmp_path)
    assert re.search(rf"^Title:\s+Invoice {NUMBER}$", info, re.M)
    assert re.search(r"^Author:\s+Dealdesk Demo GmbH$", info, re.M)
    assert re.search(r"^CreationDate:\s+Mon Mar\s+2 00:00:00 2026 UTC$", info, re.M)
    assert re.search(r"^Page size:.*\(A4\)$", info, re.M)


def test_120_lines_flow_over_pages_with_the_header_repeated(long_pdf: bytes,
                                                           tmp_path: Path) -> None:
    found = re.search(r"^Pages:\s+(\d+)$", pdf_tool("pdfinfo", long_pdf, tmp_path), re.M)
    assert found
    pages = int(found.group(1))
    assert pages >= 3
    seen: list[int] = []
    for page in range(1, pages + 1):
        text = pdf_text(long_pdf, page)
        assert f"Page {page} of {pages}" in text
        assert f"Dealdesk Demo GmbH · Invoice {NUMBER}" in text
        batches = [int(n) for n in re.findall(r"Seat licence batch (\d+)\s+10\s+USD 15\.00\s+"
                                              r"USD 150\.00", text)]
        if batches:
            assert re.search(r"Description\s+Qty\s+Unit price\s+Amount", text), page
        seen += batches
    assert seen == list(range(3, 121))  # every line, once, in order
    last = pdf_text(long_pdf, pages)
    assert re.search(r"Total\s+USD 25,489\.86", pdf_text(long_pdf)) and "Billing schedule" in last


def test_same_invoice_gives_the_same_bytes(small_pdf: bytes) -> None:
    assert render_invoice(make_invoice()) == small_pdf
    other = dataclasses.replace(make_invoice(), number="INV-2026-000043")
    assert render_invoice(other) != small_pdf


def test_another_process_renders_the_same_bytes(small_pdf: bytes) -> None:
    # Re-rendering on another worker must reproduce the invoice that was sent, byte for byte.
    script = ("import sys; from tests.test_invoice import make_invoice; "
              "from documents.invoice import render_invoice; "
              "sys.stdout.buffer.write(render_invoice(make_invoice()))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True,
                         cwd=Path(__file__).parent.parent, env={"PYTHONHASHSEED": "12345"})
    assert out.stdout == small_pdf


def test_zero_and_three_decimal_currencies_print_their_own_exponent() -> None:
    yen = pdf_text(render_invoice(make_invoice(currency="JPY")))
    assert re.search(r"\s3\s+JPY 123,450\s+JPY 370,350", yen)
    dinar = pdf_text(render_invoice(make_invoice(currency="KWD")))
    assert re.search(r"\s3\s+KWD 123\.450\s+KWD 370\.350", dinar)


@pytest.mark.parametrize(("change", "message"), [
    ({"number": " "}, "number is empty"),
    ({"due": ISSUED - dt.timedelta(days=1)}, "due (2026-03-01) is before issued"),
    ({"currency": "usd"}, "currency 'usd' is not an ISO 4217 code"),
    ({"bill_to": []}, "bill_to is empty"),
    ({"lines": [], "subtotal": 0}, "lines is empty"),
    ({"subtotal": 1}, "subtotal is 1 but the lines add up to 370449"),
    ({"total": 1}, "total is 1 but subtotal plus taxes is 442686"),
])
def test_refuses_an_invoice_that_would_mislead(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvoiceError) as err:
        render_invoice(dataclasses.replace(make_invoice(), **change))  # type: ignore[arg-type]
    assert message in str(err.value)


# --- CSV ------------------------------------------------------------------------------------

def list_row(**change: object) -> InvoiceListRow:
    row = InvoiceListRow(NUMBER, ISSUED, dt.date(2026, 4, 1), "Zoë Ångström AB",
                         "Quote Q-12 v2", "USD", 370449, 72237, 442686, "issued")
    return dataclasses.replace(row, **change)  # type: ignore[arg-type]


def test_csv_round_trips_through_csv_reader() -> None:
    rows = [list_row(),
            list_row(number="INV-2026-000043", account='Acme, "The" Co.\nEMEA',
                     currency="JPY", subtotal=1234567, tax=0, total=1234567, status="paid"),
            list_row(number="INV-2026-000044", currency="KWD", subtotal=-1500, tax=-5,
                     total=-1505, status="void")]
    out = invoices_csv(rows)
    assert out.startswith("number,issued,due,account,quote,currency,subtotal,tax,total,"
                          "status\r\n")
    parsed = list(csv.reader(io.StringIO(out, newline="")))
    assert parsed == [
        ["number", "issued", "due", "account", "quote", "currency", "subtotal", "tax", "total",
         "status"],
        [NUMBER, "2026-03-02", "2026-04-01", "Zoë Ångström AB", "Quote Q-12 v2", "USD",
         "3704.49", "722.37", "4426.86", "issued"],
        ["INV-2026-000043", "2026-03-02", "2026-04-01", 'Acme, "The" Co.\nEMEA',
         "Quote Q-12 v2", "JPY", "1234567", "0", "1234567", "paid"],
        ["INV-2026-000044", "2026-03-02", "2026-04-01", "Zoë Ångström AB", "Quote Q-12 v2",
         "KWD", "-1.500", "-0.005", "-1.505", "void"],
    ]
    assert invoices_csv([]) == out.split("\r\n")[0] + "\r\n"


@pytest.mark.parametrize("evil", ['=HYPERLINK("http://evil.test","Click")', "+1+2", "-2+3",
                                  "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_neutralises_formulas_in_text_cells(evil: str) -> None:
    out = invoices_csv([list_row(account=evil, quote_ref=evil)])
    _, row = list(csv.reader(io.StringIO(out, newline="")))
    assert row[3] == row[4] == "'" + evil
    assert row[6:9] == ["3704.49", "722.37", "4426.86"]  # numbers stay numbers


def test_csv_leaves_ordinary_text_alone() -> None:
    out = invoices_csv([list_row(account="Acme = Co - Ltd", quote_ref="Q-1 (v2)")])
    _, row = list(csv.reader(io.StringIO(out, newline="")))
    assert row[3:5] == ["Acme = Co - Ltd", "Q-1 (v2)"]
