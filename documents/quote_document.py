"""The quote document: a DOCX, assembled like a proposal or filled from the company's template,
then a PDF with the attachments appended.

:func:`render_docx` without a template assembles the built-in document through
``documents.assembly`` (:func:`assembled_docx`: cover with the customer, the offer and its
validity, contents, configuration, pricing, the bill of materials when there is one, terms):
the quote and the proposal share one layout. With the company's uploaded template it fills
that docxtpl template (Jinja inside Word); :func:`default_template` is the starting point
offered for download (built in code with python-docx: no binary .docx in the repository).
:func:`render_docx_isolated` does either in a separate process with limits (callers use it).
:func:`render_pdf` converts it through ``convert`` (LibreOffice, see ``documents.convert``) and
appends the attachments: PDFs page by page, PNG/JPEG images as one A4 page each. A bad template
or attachment raises :class:`QuoteDocumentError` naming it; ``convert``'s errors pass through.

- **Templates are untrusted** (users upload them): Jinja's immutable sandbox (no ``__class__``
  tricks, no mutating the data), XML autoescaping (``<w:p> & Co`` in data stays text) and
  strict undefined (a misspelt name is an error, not a silent blank). The sandbox doesn't bound
  time or memory (loops inside loops, ``'x' * 10**10``, a huge DOCX), so callers use
  :func:`render_docx_isolated`: the same render in a child process with a time and a memory
  limit (``documents.sandbox``), killed on overrun (:class:`TemplateLimitExceeded`). The
  built-in document goes the same way: one path, and the data (names, lines, terms) is the
  user's too; the process costs about 35 ms a render on top of 40-80 ms.
- **Template context**, strings unless noted: ``org_name number title account_name prepared_by
  issued valid_until currency channel term term_months``(int) ``list_total discount_total
  discount_pct net_total``; ``lines`` of ``position``(int) ``sku name quantity unit list_unit
  discount net_unit net_total options``(list); ``bom`` of ``level``(int) ``indent`` (one em
  space a level) ``sku name quantity``; ``terms``; ``attachments`` (file names). Money reads
  ``USD 1,234.50`` with a no-break space, so a table cell never splits it.
- **The PDF stays plain, so it can be signed later** (see ``documents.attachments``).
- **Stable**: equal input gives equal DOCX bytes (fixed zip times, dates from ``issued``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import docx
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from docxtpl import DocxTemplate
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cpq.money import major
from documents import sandbox
from documents.assembly import (
    EM_SPACE,
    NBSP,
    AssemblyError,
    BomRow,
    Cover,
    DocLine,
    Part,
    Totals,
    assemble,
    bill_of_materials,
    pricing_table,
    text_section,
)
from documents.assembly import long_date as _date
from documents.assembly import percent as _percent
from documents.assembly import plain_text as _text
from documents.attachments import Attachment, AttachmentError, append_pages, pages_of
from documents.convert import ConversionFailed, check_docx
from documents.zips import stable_zip

_CHANNELS = {"direct": "Direct", "web": "Web", "reseller": "Reseller",
             "distributor": "Distributor"}


TEMPLATE_LIMITS = sandbox.Limits(seconds=10, memory_mb=512)
"""Measured (bench/template_sandbox.py): a render takes 40-80 ms in a child of about 105 MB of
address space, most of it the libraries'; a template carrying 18 MB of images 1.3 s and 190 MB.
So the limits leave 7x the time and 2.5x the memory of the largest upload we accept."""


class QuoteDocumentError(ValueError):
    """A bad template or an unreadable attachment; the message names it and the fix."""


class TemplateLimitExceeded(QuoteDocumentError):
    """Filling in the template ran over its time or memory limit, or its process died;
    ``limit`` is "time", "memory" or "crashed"."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class QuoteDocument:
    org_name: str  # the seller, e.g. "Acme Inc."
    number: str  # with the version, e.g. "Q-12 v2"
    title: str
    account_name: str  # the buyer
    prepared_by: str
    issued: dt.date
    valid_until: dt.date
    currency: str  # ISO 4217, e.g. "USD"; sets the decimals of every amount
    channel: str  # "direct", "web", "reseller", "distributor"
    lines: list[DocLine]
    bom: list[BomRow]  # in display order (depth first)
    list_total: int  # minor units
    net_total: int  # minor units
    term_months: int  # 0 for a one-off purchase
    terms: list[str]  # terms and conditions, a paragraph each (standard and non-standard)
    attachments: list[Attachment] = field(default_factory=list)


def render_docx(doc: QuoteDocument, template: bytes | None = None) -> bytes:
    """The quote as DOCX bytes, from ``template`` (an uploaded .docx), or, without one,
    through ``documents.assembly`` like a proposal (:func:`assembled_docx`)."""
    if not re.fullmatch(r"[A-Z]{3}", doc.currency):
        raise QuoteDocumentError(f"currency {doc.currency!r} is not an ISO 4217 code like USD")
    if template is None:
        return assembled_docx(doc)
    try:
        check_docx(template, "the quote template")
    except ConversionFailed as e:
        raise QuoteDocumentError(e.message) from e
    tpl = DocxTemplate(io.BytesIO(template))
    try:
        tpl.init_docx()
    except MemoryError:
        raise  # a limit of render_docx_isolated, not a damaged file
    except Exception as e:  # python-docx and lxml raise many types for a damaged package
        raise QuoteDocumentError("the quote template can't be opened as a Word document; "
                                 "open it in Word, save it as .docx and upload it again") from e
    sandbox = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
    try:
        tpl.render(_context(doc), jinja_env=sandbox)
    except TemplateError as e:
        raise _template_error(e) from e
    except MemoryError:
        raise
    except Exception as e:  # a template can make any expression fail (1/0, 'a' + 1, ...)
        raise QuoteDocumentError(f"the quote template failed while being filled in: "
                                 f"{type(e).__name__}: {e}") from e
    props = tpl.docx.core_properties
    props.title, props.subject = doc.title, f"Quote {doc.number}"
    props.author = props.last_modified_by = doc.prepared_by
    props.created = props.modified = dt.datetime.combine(doc.issued, dt.time(), dt.UTC)
    props.revision = 1
    out = io.BytesIO()
    tpl.save(out)
    return stable_zip(out.getvalue())


def render_docx_isolated(doc: QuoteDocument, template: bytes | None = None, *,
                         limits: sandbox.Limits = TEMPLATE_LIMITS) -> bytes:
    """:func:`render_docx` in a separate process within ``limits``: the same bytes, or the
    same :class:`QuoteDocumentError`, or :class:`TemplateLimitExceeded` naming the limit.

    Blocking (it waits for the child): call it on a worker thread, not on an event loop.
    """
    # Only the attachments' names reach the template: don't copy their bytes to the child.
    slim = dataclasses.replace(doc, attachments=[
        Attachment(a.name, b"", a.media_type) for a in doc.attachments])
    try:
        return sandbox.run(render_docx, slim, template, limits=limits)
    except sandbox.TimeLimitExceeded as e:
        raise TemplateLimitExceeded(
            f"the quote template took longer than {limits.seconds:g} s to fill in (the time "
            f"limit; {e}) and was stopped; look for loops inside loops or loops over long "
            "ranges", "time") from e
    except sandbox.MemoryLimitExceeded as e:
        raise TemplateLimitExceeded(
            f"the quote template needed more than {limits.memory_mb} MB of memory to fill in "
            "(the memory limit) and was stopped; look for very long repeated text (such as "
            "'x' * 1000000) or reduce its images", "memory") from e
    except sandbox.SandboxError as e:
        raise TemplateLimitExceeded(
            f"filling in the quote template crashed ({e}); simplify the template, save it "
            "again in Word and upload it again", "crashed") from e


FIELDS: dict[str, str] = {
    "org_name": "your company's name", "number": "the quote number and version (Q-12 v2)",
    "title": "the quote's title", "account_name": "the customer",
    "prepared_by": "the quote's owner", "issued": "the date it was generated",
    "valid_until": "the last day the offer holds", "currency": "ISO code, e.g. USD",
    "channel": "Direct, Web, Reseller or Distributor", "term": "e.g. 36 months",
    "term_months": "a number (0: one-off purchase)", "list_total": "amount before discounts",
    "discount_total": "amount off list", "discount_pct": "e.g. 16.13%",
    "net_total": "the amount to pay",
    "lines": "loop: position sku name quantity unit list_unit discount net_unit net_total "
             "options",
    "bom": "loop: level indent sku name quantity", "terms": "loop: one paragraph each",
    "attachments": "loop: file names"}
"""What a template can use, each with what it holds (the context of :func:`render_docx`)."""


def template_fields(template: bytes) -> bytes:
    """The names ``template`` uses that it doesn't define itself, one per line (bytes, to
    cross the sandbox; callers use :func:`template_fields_isolated`)."""
    try:
        tpl = DocxTemplate(io.BytesIO(template))
        tpl.init_docx()
        env = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
        names = tpl.get_undeclared_template_variables(env) - set(env.globals)  # range, …
    except TemplateError as e:
        raise _template_error(e) from e
    except MemoryError:
        raise
    except Exception as e:
        raise QuoteDocumentError("the quote template can't be opened as a Word document; "
                                 "open it in Word, save it as .docx and upload it again") from e
    return "\n".join(sorted(names)).encode()


def template_fields_isolated(template: bytes, *,
                             limits: sandbox.Limits = TEMPLATE_LIMITS) -> list[str]:
    """:func:`template_fields` in the sandbox (blocking: call it on a worker thread)."""
    try:
        found = sandbox.run(template_fields, template, limits=limits)
    except sandbox.SandboxError as e:
        raise TemplateLimitExceeded(
            f"reading the quote template's fields overran its limits ({e})", e.limit) from e
    return [n for n in found.decode().split("\n") if n]


def render_pdf(docx: bytes, convert: Callable[[bytes, str], bytes],
               attachments: Sequence[Attachment]) -> bytes:
    """The converted quote with ``attachments`` appended in order, as one plain PDF.

    Attachments are checked before ``convert`` runs, so a bad one costs no conversion.
    """
    try:
        appended = [pages_of(a) for a in attachments]
    except AttachmentError as e:
        raise QuoteDocumentError(str(e)) from e
    return append_pages(convert(docx, "quote.docx"), appended)


def assembled_docx(doc: QuoteDocument) -> bytes:
    """The built-in quote document, assembled as a proposal is: cover (customer, offer,
    validity), contents, configuration, pricing (list and net price per the same unit), the
    bill of materials when there is one, terms and the attachments' names."""
    cover = Cover(customer=doc.account_name, title=doc.title, number=doc.number,
                  valid_until=doc.valid_until, prepared_by=doc.prepared_by, issued=doc.issued,
                  seller=doc.org_name, kind="Quote")
    ctx = _context(doc)
    overview = f"Term: {ctx['term']} · Sales channel: {ctx['channel']} · Currency: {doc.currency}"
    parts: list[Part | None] = []
    if doc.lines:
        config: list[tuple[str, str | None]] = [(overview, None)]
        for line in doc.lines:
            config.append((f"{line.position}. {line.name} ({line.sku}) × {line.quantity:,}",
                           "Heading 3"))
            config += [(o, "List Bullet") for o in line.options or ["Standard configuration"]]
        parts.append(text_section("Configuration", config))
    try:
        parts.append(pricing_table(doc.lines, doc.currency,
                                   Totals(doc.list_total, doc.net_total)))
        parts.append(bill_of_materials(doc.bom))
        if not doc.lines:
            parts.append(text_section("Terms of the offer", [(overview, None)]))
        attached = [(a.name, "List Bullet") for a in doc.attachments]
        if doc.terms:  # the attachments' names close the terms (their pages follow)
            parts.append(text_section("Terms and conditions", [
                *((t, "List Number") for t in doc.terms),
                *([("Attachments", "Heading 2"), *attached] if attached else [])]))
        elif attached:
            parts.append(text_section("Attachments", attached))
        return assemble(cover, [p for p in parts if p is not None], [])
    except AssemblyError as e:
        raise QuoteDocumentError(f"the quote document can't be put together: {e}") from e


@functools.cache
def default_template() -> bytes:
    """The built-in template: cover, configuration, BoM, line items, pricing, terms."""
    d = docx.Document()
    section = d.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)  # A4, like image attachments
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Mm(18))
    d.styles["Normal"].font.name = "Calibri"  # LibreOffice substitutes metric-equal Carlito
    cells = d.styles.add_style("Quote Table Text", WD_STYLE_TYPE.PARAGRAPH)
    cells.base_style, cells.font.size = d.styles["Normal"], Pt(8.5)
    cells.paragraph_format.space_after = Pt(0)

    d.add_paragraph().add_run("{{ org_name }}").bold = True
    _paragraphs(d, ("{{ title }}", "Title"), ("Quote {{ number }}", "Subtitle"))
    for label, name in (("Prepared for", "account_name"), ("Prepared by", "prepared_by"),
                        ("Issued", "issued"), ("Valid until", "valid_until")):
        p = d.add_paragraph()
        p.add_run(f"{label}: ").bold = True
        p.add_run(f"{{{{ {name} }}}}")
    d.add_page_break()
    _paragraphs(d, ("Configuration summary", "Heading 1"), ("{%p for line in lines %}", None),
                ("{{ line.position }}. {{ line.name }} ({{ line.sku }}) × {{ line.quantity }}",
                 "Heading 3"), ("{%p for option in line.options %}", None),
                ("{{ option }}", "List Bullet"), ("{%p endfor %}", None),
                ("{%p if not line.options %}", None), ("Standard configuration", "List Bullet"),
                ("{%p endif %}", None), ("{%p endfor %}", None),
                ("Bill of materials", "Heading 1"))
    _loop_table(d, "row in bom", [("Level", "{{ row.level }}", 13, False),
                                  ("SKU", "{{ row.indent }}{{ row.sku }}", 45, False),
                                  ("Name", "{{ row.name }}", 96, False),
                                  ("Quantity", "{{ row.quantity }}", 20, True)])
    d.add_heading("Line items", level=1)
    _loop_table(d, "line in lines", [
        ("#", "{{ line.position }}", 7, True), ("SKU", "{{ line.sku }}", 22, False),
        ("Name", "{{ line.name }}", 33, False), ("Qty", "{{ line.quantity }}", 11, True),
        ("Unit", "{{ line.unit }}", 19, False), ("List unit", "{{ line.list_unit }}", 22, True),
        ("Disc.", "{{ line.discount }}", 12, True), ("Net unit", "{{ line.net_unit }}", 22, True),
        ("Net total", "{{ line.net_total }}", 26, True)])
    d.add_heading("Pricing summary", level=1)
    summary = d.add_table(rows=6, cols=2, style="Table Grid")
    for i, (label, value) in enumerate((
            ("List total", "{{ list_total }}"),
            ("Discount", "{{ discount_total }} ({{ discount_pct }})"),
            ("Net total", "{{ net_total }}"), ("Currency", "{{ currency }}"),
            ("Term", "{{ term }}"), ("Sales channel", "{{ channel }}"))):
        _cell(summary, i, 0, label, 50, bold=True)
        _cell(summary, i, 1, value, 124, bold=label == "Net total")
    _paragraphs(d, ("Terms and conditions", "Heading 1"), ("{%p for term in terms %}", None),
                ("{{ term }}", "List Number"), ("{%p endfor %}", None),
                ("{%p if attachments %}", None), ("Attachments", "Heading 1"),
                ("{%p for name in attachments %}", None), ("{{ name }}", "List Bullet"),
                ("{%p endfor %}", None), ("{%p endif %}", None))
    footer = section.footer.paragraphs[0]
    footer.style = cells
    footer.add_run("{{ org_name }} · Quote {{ number }} · valid until {{ valid_until }} · page ")
    page = OxmlElement("w:fldSimple")
    page.set(qn("w:instr"), "PAGE")
    footer._p.append(page)
    out = io.BytesIO()
    d.save(out)
    return stable_zip(out.getvalue())


# -- the template ------------------------------------------------------------------------


def _template_error(e: TemplateError) -> QuoteDocumentError:
    """Name the problem and quote the paragraph it is in (docxtpl keeps 3 lines before it)."""
    lineno, around = getattr(e, "lineno", None), getattr(e, "docx_context", None)
    text = list(around)[min(lineno - 1, 3):][:1] if lineno and around is not None else []
    near = f" near “{text[0].strip()[:80]}”" if text and text[0].strip() else ""
    problem = ("has a syntax error" if isinstance(e, TemplateSyntaxError) else
               "tries something templates may not do" if isinstance(e, SecurityError) else
               "uses a name the quote doesn't have" if isinstance(e, UndefinedError) else
               "can't be filled in")
    return QuoteDocumentError(f"the quote template {problem}{near}: {e}")


def _context(doc: QuoteDocument) -> dict[str, Any]:
    def money(minor: int) -> str:
        return f"{doc.currency}{NBSP}{major(minor, doc.currency)}"

    discount = doc.list_total - doc.net_total
    return {
        "org_name": _text(doc.org_name), "number": _text(doc.number), "title": _text(doc.title),
        "account_name": _text(doc.account_name), "prepared_by": _text(doc.prepared_by),
        "issued": _date(doc.issued), "valid_until": _date(doc.valid_until),
        "currency": doc.currency, "channel": _CHANNELS.get(doc.channel, _text(doc.channel)),
        "term_months": doc.term_months,
        "term": ("one-off purchase" if doc.term_months == 0 else
                 f"{doc.term_months} month" + ("s" if doc.term_months != 1 else "")),
        "list_total": money(doc.list_total), "net_total": money(doc.net_total),
        "discount_total": money(discount),
        "discount_pct": _percent(100 * discount / doc.list_total if doc.list_total else 0.0),
        "lines": [{"position": line.position, "sku": _text(line.sku), "name": _text(line.name),
                   "quantity": f"{line.quantity:,}", "unit": _text(line.unit),
                   "list_unit": money(line.list_unit), "net_unit": money(line.net_unit),
                   "net_total": money(line.net_total), "discount": _percent(line.discount_pct),
                   "options": [_text(o) for o in line.options]} for line in doc.lines],
        "bom": [{"level": row.level, "indent": EM_SPACE * max(row.level, 0),
                 "sku": _text(row.sku), "name": _text(row.name), "quantity": f"{row.quantity:,}"}
                for row in doc.bom],
        "terms": [_text(t) for t in doc.terms],
        "attachments": [_text(a.name) for a in doc.attachments],
    }


def _paragraphs(d: Any, *specs: tuple[str, str | None]) -> None:
    for text, style in specs:
        d.add_paragraph(text, style=style)


def _loop_table(d: Any, loop: str, columns: list[tuple[str, str, int, bool]]) -> None:
    """A header row, then one row docxtpl repeats ``for loop``.

    Columns are (header, cell template, width in mm, right-aligned).
    """
    table = d.add_table(rows=4, cols=len(columns), style="Table Grid")
    table.rows[1].cells[0].text = f"{{%tr for {loop} %}}"
    table.rows[3].cells[0].text = "{%tr endfor %}"
    for i, (head, value, width, right) in enumerate(columns):
        _cell(table, 0, i, head, width, bold=True, right=right)
        _cell(table, 2, i, value, width, right=right)
    flag = OxmlElement("w:tblHeader")  # repeat the header row on every page
    flag.set(qn("w:val"), "true")
    table.rows[0]._tr.get_or_add_trPr().append(flag)


def _cell(table: Any, row: int, col: int, text: str, width: int, *, bold: bool = False,
          right: bool = False) -> None:
    cell = table.rows[row].cells[col]
    table.columns[col].width = cell.width = Mm(width)  # LibreOffice reads the grid, Word cells
    para = cell.paragraphs[0]
    para.style = "Quote Table Text"
    para.add_run(text).bold = bold
    if right:
        para.alignment = WD_ALIGN_PARAGRAPH.RIGHT

