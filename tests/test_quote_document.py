"""Quote document: the default template read back with python-docx, user templates in the
sandbox, and the PDF made by the real LibreOffice read back with pdftotext and pypdf."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import docx
import pytest
from PIL import Image
from pypdf import PageObject, PdfReader, PdfWriter
from reportlab.pdfgen import canvas

from documents.assembly import BomRow, DocLine
from documents.attachments import Attachment
from documents.convert import DEFAULT_UNO_VENV, ConversionFailed, Converter
from documents.intake import accept_pdf
from documents.quote_document import (
    QuoteDocument,
    QuoteDocumentError,
    default_template,
    render_docx,
    render_pdf,
)
from tests.pdfs import contract_pdf

EVIL = "Smith & Sons <w:p><w:r><w:t>injected</w:t></w:r></w:p> &amp; Co"
NBSP, EM = "\u00a0", "\u2003"

needs_libreoffice = pytest.mark.skipif(
    not (DEFAULT_UNO_VENV / "bin" / "python").exists(),
    reason="no .venv-uno: run scripts/bootstrap.sh")


def make_quote(**changes: Any) -> QuoteDocument:
    specs = [  # sku, name, qty, unit, list unit, discount %, options
        ("WS-9", "Workstation WS-9", 10, "each", 249_900, 12.5,
         ["Display: 27-inch 4K × 1", "Colour: graphite"]),
        ("DOCK-2", "Thunderbolt dock", 10, "each", 29_900, 10.0, []),
        ("KB-US", "Keyboard, US layout", 12, "each", 8_950, 0.0, ["Layout: US"]),
        ("CARE-3Y", "Care plan, 3 years", 10, "seat/month", 1_250, 20.0, []),
        ("INST", "On-site installation", 1, "each", 150_000, 100.0, ["Site: Berlin"]),
    ]
    lines = []
    for i, (sku, name, qty, unit, list_unit, pct, options) in enumerate(specs, start=1):
        net_unit = round(list_unit * (100 - pct) / 100)
        lines.append(DocLine(i, sku, name, qty, unit, list_unit, net_unit, net_unit * qty, pct,
                             options))
    quote = QuoteDocument(
        org_name="Acme Inc.", number="Q-12 v2", title="Workstations for the design team",
        account_name=EVIL, prepared_by="Ines Ortiz", issued=dt.date(2024, 5, 1),
        valid_until=dt.date(2024, 5, 31), currency="USD", channel="reseller", lines=lines,
        bom=[BomRow(0, "WS-9", "Workstation WS-9", 10), BomRow(1, "WS-9-MB", "Mainboard", 10),
             BomRow(2, "CPU-X24", "CPU, 24 cores", 10), BomRow(2, "RAM-64", "RAM 64 GB", 20),
             BomRow(1, "MON-27K", "Display 27-inch 4K", 10), BomRow(0, "DOCK-2", "Dock", 10),
             BomRow(1, "CBL-TB4", "Thunderbolt 4 cable", 10)],
        list_total=sum(line.list_unit * line.quantity for line in lines),
        net_total=sum(line.net_total for line in lines), term_months=36,
        terms=["Payment within 30 days of invoice.", "Prices exclude VAT.\nDelivery: 4 weeks."])
    return dataclasses.replace(quote, **changes)


def table_with_header(document: docx.document.Document, first: str) -> list[list[str]]:
    for table in document.tables:
        rows = [[cell.text for cell in row.cells] for row in table.rows]
        if rows and rows[0][0] == first:
            return rows
    raise AssertionError(f"no table starting with {first!r}")


def all_text(document: docx.document.Document) -> str:
    parts = [p.text for p in document.paragraphs]
    parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    parts += [p.text for s in document.sections for p in s.footer.paragraphs]
    return "\n".join(parts)


def user_template(*paragraphs: str) -> bytes:
    d = docx.Document()
    for text in paragraphs:
        d.add_paragraph(text)
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def pdf_text(pdf: bytes) -> str:
    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True,
                          timeout=60, check=True)
    return " ".join(done.stdout.decode().split())


def png(width: int = 800, height: int = 500, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), "teal").save(out, format="PNG")
    return out.getvalue()


def stub_pdf(_docx: bytes, _name: str) -> bytes:
    """Stands in for LibreOffice where the conversion itself is not under test."""
    return contract_pdf(pages=1)


def never_convert(_docx: bytes, _name: str) -> bytes:
    raise AssertionError("convert ran although an attachment was bad")


# -- the default template -----------------------------------------------------------------


def test_default_document_fills_every_table() -> None:
    quote = make_quote()
    document = docx.Document(io.BytesIO(render_docx(quote)))

    assert table_with_header(document, "Level") == [
        ["Level", "SKU", "Name", "Quantity"],
        ["0", "WS-9", "Workstation WS-9", "10"],
        ["1", f"{EM}WS-9-MB", "Mainboard", "10"],
        ["2", f"{EM}{EM}CPU-X24", "CPU, 24 cores", "10"],
        ["2", f"{EM}{EM}RAM-64", "RAM 64 GB", "20"],
        ["1", f"{EM}MON-27K", "Display 27-inch 4K", "10"],
        ["0", "DOCK-2", "Dock", "10"],
        ["1", f"{EM}CBL-TB4", "Thunderbolt 4 cable", "10"],
    ]
    items = table_with_header(document, "SKU")
    assert items[0] == ["SKU", "Item", "Qty", "Unit", "List price per unit", "Disc.",
                        "Net price per unit", "Line net"]
    assert len(items) == 1 + 5
    assert items[1] == ["WS-9", "Workstation WS-9", "10", "each", f"USD{NBSP}2,499.00",
                        "12.5%", f"USD{NBSP}2,186.62", f"USD{NBSP}21,866.20"]
    assert items[4][3:] == ["seat/month", f"USD{NBSP}12.50", "20%", f"USD{NBSP}10.00",
                            f"USD{NBSP}100.00"]
    assert items[5][5:] == ["100%", f"USD{NBSP}0.00", f"USD{NBSP}0.00"]

    summary = {row[0]: row[1] for row in table_with_header(document, "List total")}
    assert quote.list_total == 3_067_900 and quote.net_total == 2_573_120
    assert summary == {
        "List total": f"USD{NBSP}30,679.00",
        "Discount": f"USD{NBSP}4,947.80{NBSP}(16.13%)",
        "Net total": f"USD{NBSP}25,731.20"}


def test_default_document_cover_configuration_and_terms() -> None:
    document = docx.Document(io.BytesIO(render_docx(make_quote(attachments=[
        Attachment("WS-9 spec sheet.pdf", b"", "application/pdf")]))))
    paragraphs = [(p.text, p.style.name if p.style else "") for p in document.paragraphs]
    texts = [text for text, _ in paragraphs]

    assert texts[:8] == ["Acme Inc.", "Workstations for the design team", "Quote Q-12 v2",
                         f"Prepared for: {EVIL}", "Offer: Q-12 v2", "Valid until: 31 May 2024",
                         "Prepared by: Ines Ortiz", "Issued: 1 May 2024"]
    headings = [text for text, style in paragraphs if style == "Heading 1"]
    assert headings == ["Configuration", "Pricing", "Bill of materials",
                        "Terms and conditions"]
    start = {text: i for i, (text, style) in enumerate(paragraphs) if style == "Heading 1"}
    config = texts[start["Configuration"] + 1:start["Pricing"]]
    assert [t for t in config if t] == [
        "Term: 36 months · Sales channel: Reseller · Currency: USD",
        "1. Workstation WS-9 (WS-9) × 10", "Display: 27-inch 4K × 1", "Colour: graphite",
        "2. Thunderbolt dock (DOCK-2) × 10", "Standard configuration",
        "3. Keyboard, US layout (KB-US) × 12", "Layout: US",
        "4. Care plan, 3 years (CARE-3Y) × 10", "Standard configuration",
        "5. On-site installation (INST) × 1", "Site: Berlin"]
    terms = [(t, style) for t, style in paragraphs[start["Terms and conditions"] + 1:]
             if t]
    assert terms == [("Payment within 30 days of invoice.", "List Number"),
                     ("Prices exclude VAT.\nDelivery: 4 weeks.", "List Number"),
                     ("Attachments", "Heading 2"), ("WS-9 spec sheet.pdf", "List Bullet")]
    footer = document.sections[-1].footer.paragraphs[0]
    assert footer.text.startswith("Acme Inc. · Q-12 v2 · Page ")
    assert b'w:instr=" PAGE "' in footer._p.xml.encode()
    assert "{{" not in all_text(document) and "{%" not in all_text(document)
    assert document.core_properties.title == "Workstations for the design team"
    assert document.core_properties.subject == "Quote Q-12 v2"


def test_a_quote_without_catalog_lines_has_no_empty_tables() -> None:
    """Priced by its totals alone: the totals and the offer's terms, no line, configuration
    or bill-of-materials table."""
    document = docx.Document(io.BytesIO(render_docx(make_quote(lines=[], bom=[]))))
    headings = [p.text for p in document.paragraphs if p.style and p.style.name == "Heading 1"]
    assert headings == ["Pricing", "Terms of the offer", "Terms and conditions"]
    assert [row.cells[0].text for t in document.tables for row in t.rows] == [
        "List total", "Discount", "Net total"]


def test_data_cannot_inject_word_xml() -> None:
    document = docx.Document(io.BytesIO(render_docx(make_quote(title=EVIL))))
    assert document.paragraphs[1].text == EVIL  # literal text, tags and entity included
    assert "injected" not in [p.text for p in document.paragraphs]
    assert len(document.tables) == 3


def test_same_quote_gives_same_bytes_and_the_template_is_built_once() -> None:
    assert render_docx(make_quote()) == render_docx(make_quote())
    assert default_template() is default_template()


def test_money_formatting_follows_the_currency() -> None:
    document = docx.Document(io.BytesIO(render_docx(make_quote(currency="JPY"))))
    assert table_with_header(document, "List total")[0][1] == f"JPY{NBSP}3,067,900"


def test_bad_currency_is_refused() -> None:
    with pytest.raises(QuoteDocumentError, match="'usd' is not an ISO 4217 code"):
        render_docx(make_quote(currency="usd"))


# -- user templates in the sandbox --------------------------------------------------------


def test_user_template_renders_with_escaping() -> None:
    template = user_template("Dear {{ account_name }},",
                             "{%p for line in lines %}", "{{ line.sku }}: {{ line.net_total }}",
                             "{%p endfor %}", "Total {{ net_total }}")
    document = docx.Document(io.BytesIO(render_docx(make_quote(), template)))
    assert [p.text for p in document.paragraphs] == [
        f"Dear {EVIL},", f"WS-9: USD{NBSP}21,866.20", f"DOCK-2: USD{NBSP}2,691.00",
        f"KB-US: USD{NBSP}1,074.00", f"CARE-3Y: USD{NBSP}100.00", f"INST: USD{NBSP}0.00",
        f"Total USD{NBSP}25,731.20"]


@pytest.mark.parametrize("expression", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lines.__class__ }}",
    "{{ lines.append(1) }}",
    "{{ terms.clear() }}",
])
def test_sandbox_refuses_escapes_and_mutation(expression: str) -> None:
    with pytest.raises(QuoteDocumentError,
                       match="the quote template tries something templates may not do"):
        render_docx(make_quote(), user_template("Intro", expression))


def test_template_syntax_error_names_the_paragraph() -> None:
    template = user_template("Hello {{ title }}", "{% for x in %}", "Bye")
    with pytest.raises(QuoteDocumentError) as caught:
        render_docx(make_quote(), template)
    message = str(caught.value)
    assert message.startswith("the quote template has a syntax error near “{% for x in %}”")


def test_curly_quotes_from_word_work() -> None:
    # Word's AutoFormat turns typed quotes into curly ones; docxtpl straightens them.
    document = docx.Document(io.BytesIO(render_docx(
        make_quote(), user_template("{{ title | replace(\u2018design\u2019, \u201cart\u201d) }}"))))
    assert document.paragraphs[0].text == "Workstations for the art team"


def test_unknown_names_are_errors_not_blanks() -> None:
    with pytest.raises(QuoteDocumentError, match=r"uses a name the quote doesn't have.*"
                                                 r"has no attribute 'price'"):
        render_docx(make_quote(), user_template("{% for l in lines %}{{ l.price }}{% endfor %}"))
    with pytest.raises(QuoteDocumentError, match="'customer' is undefined"):
        render_docx(make_quote(), user_template("{{ customer }}"))


def test_runtime_failure_in_a_template() -> None:
    with pytest.raises(QuoteDocumentError, match="failed while being filled in: "
                                                 "ZeroDivisionError"):
        render_docx(make_quote(), user_template("{{ 1 / 0 }}"))


@pytest.mark.parametrize(("data", "fragment"), [
    (b"", "is empty"),
    (b"hello, not a docx", "is not a Word document"),
    (contract_pdf(pages=1), "is not a Word document"),
    (b"\xd0\xcf\x11\xe0" + b"\0" * 100, "is password-protected or an old Word"),
])
def test_not_a_docx_template(data: bytes, fragment: str) -> None:
    with pytest.raises(QuoteDocumentError, match=f"^the quote template {re.escape(fragment)}"):
        render_docx(make_quote(), data)


# -- attachments (no LibreOffice needed: they are checked before converting) ----------------


@pytest.mark.parametrize(("attachment", "fragment"), [
    (Attachment("spec.pdf", b"%PDF-1.7\nthis is not really a PDF", "application/pdf"),
     "spec.pdf is not a readable PDF"),
    (Attachment("cut.pdf", contract_pdf(pages=2)[:400], "application/pdf"),
     "cut.pdf is not a readable PDF"),
    (Attachment("notes.pdf", b"just text", "application/pdf"), "notes.pdf is not a readable PDF"),
    (Attachment("photo.jpg", png(), "image/jpeg"),
     "photo.jpg is declared as JPEG but is a PNG image"),
    (Attachment("broken.png", png()[:60], "image/png"), "broken.png is not a readable PNG"),
    (Attachment("text.png", b"hello", "image/png"), "text.png is not a readable PNG"),
    (Attachment("anim.gif", b"GIF89a", "image/gif"), "anim.gif is of type 'image/gif'"),
])
def test_bad_attachment_is_refused_before_converting(attachment: Attachment,
                                                     fragment: str) -> None:
    with pytest.raises(QuoteDocumentError, match=f"^{re.escape(fragment)}"):
        render_pdf(b"unused", never_convert, [attachment])


def test_encrypted_pdf_attachment_is_refused() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(contract_pdf(pages=1))))
    writer.encrypt(user_password="", owner_password="owner")  # opens without a password, too
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(QuoteDocumentError, match=r"^locked\.pdf is password-protected"):
        render_pdf(b"", never_convert, [Attachment("locked.pdf", out.getvalue(),
                                                   "application/pdf")])


def test_pdf_with_form_fields_is_refused() -> None:
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 760, "Order form")
    c.acroForm.textfield(name="po_number", x=72, y=700, width=200, height=20)
    c.showPage()
    c.save()
    with pytest.raises(QuoteDocumentError, match=r"^form\.pdf has form fields or signatures"):
        render_pdf(b"", never_convert, [Attachment("form.pdf", buf.getvalue(),
                                                   "application/pdf")])


def test_links_and_comments_of_attached_pdfs_are_dropped() -> None:
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 760, "Spec sheet with a link")
    c.linkURL("https://example.test/ws-9", (72, 700, 300, 720))
    c.showPage()
    c.save()
    assert "/Annots" in PdfReader(io.BytesIO(buf.getvalue())).pages[0]
    pdf = render_pdf(b"", stub_pdf, [Attachment("spec.pdf", buf.getvalue(), "application/pdf")])
    appended = PdfReader(io.BytesIO(pdf)).pages[1]
    assert "/Annots" not in appended
    assert "Spec sheet with a link" in appended.extract_text()


def test_images_become_a4_pages_in_order() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (1600, 1200), "navy").save(jpeg, format="JPEG")
    pdf = render_pdf(b"", stub_pdf, [
        Attachment("wide.png", png(800, 500), "image/png"),
        Attachment("tall.png", png(300, 900, mode="RGBA"), "image/png"),
        Attachment("photo.jpg", jpeg.getvalue(), "image/jpeg"),
        Attachment("contract.pdf", contract_pdf(pages=2), "application/pdf"),
    ])
    pages = PdfReader(io.BytesIO(pdf)).pages
    sizes = [(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in pages]
    assert sizes == [(595, 842), (842, 595), (595, 842), (842, 595), (595, 842), (595, 842)]
    # Drawn size and position (points): 96 dpi by default, never enlarged, shrunk to fit
    # inside 15 mm margins, centred.
    assert image_placement(pages[1]) == (600, 375, 121, 110)
    assert image_placement(pages[2]) == (225, 675, 185, 83)
    assert image_placement(pages[3]) == (680, 510, 81, 43)
    resources: Any = pages[3]["/Resources"]
    xobjects = resources["/XObject"]
    image = next(iter(xobjects.values())).get_object()
    assert "/DCTDecode" in image["/Filter"]  # the JPEG is embedded as it came


def image_placement(page: PageObject) -> tuple[int, ...]:
    content = page.get_contents()
    assert content is not None
    found = re.search(rb"([\d.]+) 0 0 ([\d.]+) ([\d.]+) ([\d.]+) cm\s*/\S+ Do",
                      content.get_data())
    assert found is not None
    return tuple(round(float(n)) for n in found.groups())


# -- the PDF, through the real LibreOffice ------------------------------------------------


@pytest.fixture(scope="module")
def converter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converter]:
    with Converter(work_dir=tmp_path_factory.mktemp("lo")) as conv:
        yield conv


@needs_libreoffice
def test_pdf_has_the_bom_and_totals_and_attachments_add_pages(converter: Converter) -> None:
    quote = make_quote()
    docx_bytes = render_docx(quote)

    def convert(data: bytes, name: str) -> bytes:
        return converter.convert(data, filename=name)

    plain = render_pdf(docx_bytes, convert, [])
    text = pdf_text(plain)
    for sku in ("WS-9", "WS-9-MB", "CPU-X24", "RAM-64", "MON-27K", "DOCK-2", "CBL-TB4"):
        assert f" {sku} " in text
    for amount in ("USD 30,679.00", "USD 4,947.80 (16.13%)", "USD 25,731.20",
                   "USD 21,866.20", "USD 2,186.62"):
        assert amount in text
    assert f"Prepared for: {EVIL}" in text
    assert "36 months" in text and "Quote Q-12 v2" in text

    with_attachments = render_pdf(docx_bytes, convert, [
        Attachment("MSA.pdf", contract_pdf(pages=2), "application/pdf"),
        Attachment("WS-9 photo.png", png(), "image/png")])
    base = len(PdfReader(io.BytesIO(plain)).pages)
    reader = PdfReader(io.BytesIO(with_attachments))
    assert len(reader.pages) == base + 3
    assert "Master services agreement, page 2 of 2" in reader.pages[base + 1].extract_text()
    assert "/AcroForm" not in reader.root_object

    # What the envelope step will do with it: accepted for signing as it is.
    accepted = accept_pdf(with_attachments, filename="quote.pdf", max_bytes=50 * 2**20)
    assert accepted.page_count == base + 3 and accepted.signature_count == 0
    assert accepted.notes == ()


@needs_libreoffice
def test_conversion_failures_propagate(converter: Converter) -> None:
    def convert(data: bytes, name: str) -> bytes:
        return converter.convert(data, filename=name)

    with pytest.raises(ConversionFailed):
        render_pdf(b"PK\x03\x04 not really a docx", convert, [])

