"""Proposal and contract assembly: a cover, a table of contents, chosen library sections,
generated pricing and bill of materials, and a signature block, composed into one DOCX.

:func:`assemble` takes a :class:`Cover`, the :class:`Part` list in reading order and the
:class:`Signer` list, and returns DOCX bytes; the PDF comes from the warm converter
(``documents.convert``) like any other DOCX. Parts are library sections (:func:`section`,
DOCX bytes someone uploaded) or generated ones (:func:`pricing_table`,
:func:`bill_of_materials`, built with python-docx here). Bad input raises
:class:`AssemblyError` naming the part (not a DOCX, damaged, password-protected).

Callers use :func:`assemble_isolated`: the same in a child process with a time and a
memory limit (``documents.sandbox``), as library sections are uploaded files (python-docx
bounds neither what opening a DOCX costs nor how long composing takes).

How the pieces are kept:

- **Every part is its own Word section**, with its own page size, margins, columns,
  headers and footers (and so the attribution footer a CC BY template carries). A library
  section follows on the same page after another library section when neither has headers
  or footers of its own and their pages are set up alike (a continuous section break: a
  proposal's sections read on, as in Word); any other part starts on a new page, so a
  template's footer stays on its own pages. docxcompose alone would merge each part into the
  last section and drop its headers and footers; ``documents.docx_sections`` keeps them (see
  there). Pages count on through the whole proposal (a part's page-number restart is
  dropped), and comments are dropped (the author's notes, not the customer's text).
- **Generated sections** (cover and contents, pricing, BoM, signatures) share one footer,
  "Seller · number · Page X of Y" (``PAGE``/``NUMPAGES`` fields), and an empty header. A
  library section without a default header or footer of its own gets those too, rather than
  inheriting whatever the section before it had.
- **Contents**: each part's title is a Heading 1 paragraph at its start, and a ``TOC \\o "1-1"``
  field after the cover lists them. The field's cached result holds the titles already (what
  a cold LibreOffice or Word before F9 shows); the warm converter updates indexes, which adds
  the page numbers.
- **Signatures**: each :class:`Signer` gets the literal anchor ``[[sign:KEY]]`` (the form
  ``documents.intake.ANCHOR_PATTERN`` finds) followed by :data:`SIGNATURE_SPACE` of empty
  space, so the field ``documents.placement`` puts just below the anchor (54 pt high) covers
  no text; the block is kept on one page.
- **Stable**: equal input gives equal bytes: fixed zip times (``documents.zips``), core
  properties from the cover's dates, list ids derived, not random.

Limits: the parts' own document properties (author, custom properties) are not carried over
(their fields keep their text).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Literal

import docx
from docx.enum.section import WD_SECTION
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from cpq.money import MoneyError, major
from documents import sandbox, section_template
from documents.convert import ConversionFailed, check_docx
from documents.docx_sections import (
    SectionComposer,
    fill_default_references,
    prepare_section,
    stable_list_ids,
)
from documents.zips import stable_zip

__all__ = ["ASSEMBLY_LIMITS", "SIGNATURE_SPACE", "AssemblyError", "BomRow", "Cover",
           "DocLine", "Part", "Signer", "Totals", "assemble", "assemble_isolated",
           "bill_of_materials", "pricing_table", "section", "text_section"]

SIGNATURE_SPACE = Pt(66)
"""Empty space below each ``[[sign:KEY]]`` anchor: the placed field is 54 pt high, 4 pt
below the anchor (``documents.placement``), plus a margin."""

NBSP, EM_SPACE = "\u00a0", "\u2003"
_KEY = re.compile(r"[a-z0-9_-]+")  # the label of documents.intake.ANCHOR_PATTERN
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # not valid in XML; \t and \n are kept
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_MARGIN = Mm(18)
_GREY = RGBColor(0x59, 0x59, 0x59)


class AssemblyError(ValueError):
    """A part can't be used; the message names it and the fix, ``part`` is its title."""

    def __init__(self, message: str, part: str) -> None:
        super().__init__(message)
        self.part = part

    def __reduce__(self) -> tuple[type[AssemblyError], tuple[str, str]]:
        return type(self), (str(self), self.part)  # crosses the sandbox's process boundary


@dataclass(frozen=True)
class Cover:
    """What the first page says."""

    customer: str
    """The buyer, e.g. "Globex Corporation"."""
    title: str
    """The offer's title, e.g. "Workstations for the design team"."""
    number: str
    """The offer or quote number with its version, e.g. "Q-12 v2"."""
    valid_until: dt.date
    prepared_by: str
    issued: dt.date
    """Also the document's created and modified dates (so equal input is equal bytes)."""
    seller: str = ""
    """The seller's name, shown above the title and in the footer."""
    kind: str = "Proposal"
    """What the document is, before its number: "Proposal Q-12 v2", "Quote Q-12 v2"."""


@dataclass(frozen=True)
class Part:
    """One part of the proposal, in reading order (a new page, unless a plain library section
    follows another: see the module's notes)."""

    kind: Literal["section", "pricing", "bom"]
    """A library section, or a generated pricing table or bill of materials."""
    title: str
    """Its Heading 1 and its line in the contents."""
    docx: bytes
    """The part as a DOCX."""
    variables: dict[str, str] | None = None
    """For a library section that is a template (``documents.section_template``): the
    values its tags are filled in with; None leaves it as it is."""


@dataclass(frozen=True)
class Totals:
    """The quote's totals in minor units; the discount is their difference."""

    list_total: int
    net_total: int


@dataclass(frozen=True)
class Signer:
    """One signature block at the end."""

    key: str
    """The anchor's label, ``[[sign:KEY]]``: lower-case letters, digits, ``-`` and ``_``."""
    name: str
    title: str
    """The signer's job title, e.g. "Chief Financial Officer"."""
    party: str
    """Whom they sign for, e.g. "Globex Corporation"."""


@dataclass(frozen=True)
class DocLine:
    position: int
    sku: str
    name: str
    quantity: int
    unit: str  # e.g. "each", "seat/month"
    list_unit: int  # minor units (cents)
    net_unit: int  # minor units, after discounts
    net_total: int  # minor units, as priced (rounding is the pricing engine's)
    discount_pct: float  # off list, e.g. 12.5
    options: list[str]  # configuration, e.g. ["Display: 27-inch 4K × 1", "Colour: graphite"]


@dataclass(frozen=True)
class BomRow:
    level: int  # 0 = top-level line item, 1 = its component, 2 = sub-component, ...
    sku: str
    name: str
    quantity: int  # total quantity for the whole quote



def section(title: str, data: bytes, variables: dict[str, str] | None = None) -> Part:
    """A library section (DOCX bytes) titled ``title``; with ``variables``, its template
    tags are filled in from them (``documents.section_template``)."""
    return Part("section", title, data, variables)


def pricing_table(lines: Sequence[DocLine], currency: str, totals: Totals, *,
                  title: str = "Pricing") -> Part:
    """The line items with list and net price per the same unit, then the totals.

    Amounts read ``USD 1,234.50`` with a no-break space, in fixed-width columns, so a cell
    never splits one.
    """
    try:
        def money(minor: int) -> str:
            return f"{currency}{NBSP}{major(minor, currency)}".replace("-", "\u2011")

        rows = [[line.sku, line.name, f"{line.quantity:,}", line.unit,
                 money(line.list_unit), percent(line.discount_pct), money(line.net_unit),
                 money(line.net_total)] for line in lines]
        discount = totals.list_total - totals.net_total
        pct = 100 * discount / totals.list_total if totals.list_total else 0.0
        summary = [["List total", money(totals.list_total)],
                   ["Discount", f"{money(discount)}{NBSP}({percent(pct)})"],
                   ["Net total", money(totals.net_total)]]
    except MoneyError as e:
        raise AssemblyError(f"{title}: {e}", title) from e
    d = _new_document()
    if rows:  # a quote priced by its totals alone has no line table
        _table(d, ["SKU", "Item", "Qty", "Unit", "List price per unit", "Disc.",
                   "Net price per unit", "Line net"], rows,
               widths=[20, 32, 10, 20, 26, 12, 26, 28], right={2, 4, 5, 6, 7})
        d.add_paragraph()
    _table(d, [], summary, widths=[40, 44], right={1}, bold_rows={2}, align_right=True)
    return Part("pricing", title, _save(d))


def text_section(title: str, paragraphs: Sequence[tuple[str, str | None]]) -> Part:
    """A generated section of paragraphs, each ``(text, style)``: a built-in style such as
    "List Bullet", "List Number" or "Heading 2", or None for body text."""
    d = _new_document()
    for text, style in paragraphs:
        d.add_paragraph(plain_text(text), style=style)
    return Part("section", title, _save(d))


def bill_of_materials(rows: Sequence[BomRow], *,
                      title: str = "Bill of materials") -> Part | None:
    """The bill of materials, or None when there is none (never an empty table)."""
    if not rows:
        return None
    d = _new_document()
    _table(d, ["Level", "SKU", "Name", "Quantity"],
           [[str(r.level), EM_SPACE * max(r.level, 0) + r.sku, r.name, f"{r.quantity:,}"]
            for r in rows], widths=[14, 46, 94, 20], right={3})
    return Part("bom", title, _save(d))


ASSEMBLY_LIMITS = sandbox.Limits(seconds=60, memory_mb=1024)
"""Measured with the proposal of tests/test_assembly.py (18 parts, 16 of them real-world DOCX
files, about 1 MB): 0.8 s in a child of 150-200 MB of address space (it fails at 150). The
limits leave room for proposals many times that size."""


def assemble_isolated(cover: Cover, parts: Sequence[Part], signers: Sequence[Signer], *,
                      limits: sandbox.Limits = ASSEMBLY_LIMITS) -> bytes:
    """:func:`assemble` in a separate process within ``limits``: the same bytes, or the same
    :class:`AssemblyError`, or one naming the limit (``part`` is "proposal").

    Blocking (it waits for the child): call it on a worker thread, not on an event loop.
    """
    try:
        return sandbox.run(assemble, cover, list(parts), list(signers), limits=limits)
    except sandbox.SandboxError as e:
        raise AssemblyError(
            f"putting the proposal together {_OVERRUN[e.limit]} ({e}); use fewer or smaller "
            "sections (large images cost the most)", "proposal") from e


_OVERRUN = {"time": "took longer than the time limit",
            "memory": "needed more memory than the limit", "crashed": "crashed"}


def assemble(cover: Cover, parts: Sequence[Part], signers: Sequence[Signer]) -> bytes:
    """The proposal as DOCX bytes: cover, contents, ``parts`` in order, signatures."""
    for signer in signers:
        if not _KEY.fullmatch(signer.key):
            raise AssemblyError(
                f"signer {signer.name!r}: the key {signer.key!r} can't be an anchor; use "
                "lower-case letters, digits, '-' and '_' (e.g. 'buyer')", "signatures")
    master = _new_document()
    sources = [_open(p, _body_sectpr(master)) for p in parts]  # all checked before any work
    header_rid, footer_rid = _page_furniture(master, cover)
    _cover_page(master, cover)
    _contents(master, [p.title for p in parts] + (["Signatures"] if signers else []))
    closing = master.add_paragraph()  # ends the cover's section, with the body's properties
    closing._p.get_or_add_pPr().append(deepcopy(_body_sectpr(master)))

    composer = SectionComposer(master)
    before: Any = None  # the page setup a plain library section before this one ended with
    for part, source in zip(parts, sources, strict=True):
        sections = list(source.element.body.iter(qn("w:sectPr")))
        plain = part.kind == "section" and not any(
            s.find(qn("w:headerReference")) is not None
            or s.find(qn("w:footerReference")) is not None for s in sections)
        if plain and before is not None and _page_setup(sections[0]) == before:
            sections[0].start_type = WD_SECTION.CONTINUOUS
        before = _page_setup(sections[-1]) if plain else None
        master.add_paragraph(plain_text(part.title), style="Heading 1")
        composer.append(source)
    if signers:
        _signatures(master, signers)
    else:
        _end_with_last_part(master)

    even_pages = any(source.settings.odd_and_even_pages_header_footer for source in sources)
    master.settings.odd_and_even_pages_header_footer = even_pages
    fill_default_references(master, header_rid, footer_rid, even_pages=even_pages)
    stable_list_ids(master)
    props = master.core_properties
    props.title, props.subject = plain_text(cover.title), f"{cover.kind} {plain_text(cover.number)}"
    props.author = props.last_modified_by = plain_text(cover.prepared_by)
    props.created = props.modified = dt.datetime.combine(cover.issued, dt.time(), dt.UTC)
    props.revision = 1
    return _save(master)


def _page_setup(sectpr: Any) -> tuple[str, ...]:
    """A section's page size, orientation, margins and columns, to compare with another's."""
    found = [sectpr.find(qn(tag)) for tag in ("w:pgSz", "w:pgMar", "w:cols")]
    return tuple(sorted(f"{k}={v}" for el in found if el is not None
                        for k, v in el.attrib.items()))


def _end_with_last_part(d: Any) -> None:
    """Without a signature block, the last part's own section break would leave an empty
    last page: its section properties become the document's last ones instead."""
    final = _body_sectpr(d)
    last = final.getprevious()
    ppr = last.find(qn("w:pPr")) if last is not None and last.tag == qn("w:p") else None
    inner = ppr.find(qn("w:sectPr")) if ppr is not None else None
    if ppr is not None and inner is not None:
        ppr.remove(inner)
        d.element.body.replace(final, inner)


def _open(part: Part, page: Any) -> Any:
    """The part as a python-docx document ready to append, or :class:`AssemblyError`;
    ``page`` is the section properties of one without any."""
    title = plain_text(part.title) or "(untitled)"
    if not part.title.strip():
        raise AssemblyError("a part has no title; give every part a title for the contents",
                            title)
    try:
        check_docx(part.docx, f"{title}.docx")
        data = part.docx
        if part.variables is not None:
            data = section_template.render(data, part.variables, f"part “{title}”")
        source = docx.Document(io.BytesIO(data))
    except ConversionFailed as e:
        raise AssemblyError(f"part “{title}”: {e.message}", title) from e
    except section_template.SectionTemplateError as e:
        raise AssemblyError(str(e), title) from e
    except MemoryError:
        raise  # a limit of assemble_isolated, not a damaged file
    except Exception as e:  # python-docx and lxml raise many types for a damaged package
        raise AssemblyError(f"part “{title}” can't be opened as a Word document; open it in "
                            "Word, save it as .docx and upload it again", title) from e
    prepare_section(source, page)
    return source


# -- generated content -------------------------------------------------------------------


def _new_document() -> Any:
    d = docx.Document()
    sec = d.sections[0]
    sec.page_width, sec.page_height = Mm(210), Mm(297)
    sec.left_margin = sec.right_margin = sec.top_margin = sec.bottom_margin = _MARGIN
    d.styles["Normal"].font.name = "Calibri"  # LibreOffice substitutes metric-equal Carlito
    return d


def _body_sectpr(d: Any) -> Any:
    return d.element.body.find(qn("w:sectPr"))


def _page_furniture(d: Any, cover: Cover) -> tuple[str, str]:
    """An empty header and the "Page X of Y" footer; their relationship ids."""
    sec = d.sections[0]
    sec.header.is_linked_to_previous = False
    sec.footer.is_linked_to_previous = False
    para = sec.footer.paragraphs[0]
    para.alignment = WD_ALIGN_PARAGRAPH.CENTER
    lead = " · ".join(plain_text(t) for t in (cover.seller, cover.number) if t)
    for text, field in (((lead + " · ") if lead else "", None), ("Page ", "PAGE"),
                        (" of ", "NUMPAGES")):
        if text:
            _small(para.add_run(text))
        if field:  # the field's cached result, in the footer's small grey text
            simple = OxmlElement("w:fldSimple", {qn("w:instr"): f" {field} "})
            result = para.add_run("1")
            _small(result)
            simple.append(result._r)
            para._p.append(simple)
    sectpr = _body_sectpr(d)
    header = sectpr.find(qn("w:headerReference")).get(qn("r:id"))
    footer = sectpr.find(qn("w:footerReference")).get(qn("r:id"))
    return str(header), str(footer)


def _cover_page(d: Any, cover: Cover) -> None:
    if cover.seller:
        d.add_paragraph().add_run(plain_text(cover.seller)).bold = True
    d.add_paragraph(plain_text(cover.title), style="Title")
    d.add_paragraph(f"{plain_text(cover.kind)} {plain_text(cover.number)}", style="Subtitle")
    for label, value in (("Prepared for", cover.customer), ("Offer", cover.number),
                         ("Valid until", long_date(cover.valid_until)),
                         ("Prepared by", cover.prepared_by), ("Issued", long_date(cover.issued))):
        p = d.add_paragraph()
        p.add_run(f"{label}: ").bold = True
        p.add_run(plain_text(value))


def _contents(d: Any, titles: list[str]) -> None:
    """ "Contents" and a TOC field whose cached result already lists ``titles``."""
    d.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    d.add_paragraph("Contents", style="TOC Heading")
    paras = [d.add_paragraph(plain_text(t)) for t in titles] or [d.add_paragraph()]
    first, last = paras[0]._p, paras[-1]._p
    begin = [_field_char("begin"), _instr(' TOC \\o "1-1" \\h \\z \\u '),
             _field_char("separate")]
    anchor = first.find(qn("w:r"))
    for run in begin:
        if anchor is not None:
            anchor.addprevious(run)
        else:
            first.append(run)
    last.append(_field_char("end"))


def _field_char(kind: str) -> Any:
    run = OxmlElement("w:r")
    run.append(OxmlElement("w:fldChar", {qn("w:fldCharType"): kind}))
    return run


def _instr(text: str) -> Any:
    run = OxmlElement("w:r")
    instr = OxmlElement("w:instrText", {qn("xml:space"): "preserve"})
    instr.text = text
    run.append(instr)
    return run


def _signatures(d: Any, signers: Sequence[Signer]) -> None:
    d.add_paragraph("Signatures", style="Heading 1")
    for signer in signers:
        party = d.add_paragraph()
        party.add_run(f"Signed for {plain_text(signer.party)}").bold = True
        party.paragraph_format.keep_with_next = True
        party.paragraph_format.space_before = Pt(18)
        anchor = d.add_paragraph()
        _small(anchor.add_run(f"[[sign:{signer.key}]]"))
        fmt = anchor.paragraph_format
        fmt.keep_with_next, fmt.space_after = True, SIGNATURE_SPACE
        for i, line in enumerate((f"Name: {plain_text(signer.name)}",
                                  f"Title: {plain_text(signer.title)}", "Date:")):
            p = d.add_paragraph(line)
            p.paragraph_format.space_after = Pt(0)
            p.paragraph_format.keep_with_next = i < 2


def _table(d: Any, head: list[str], rows: list[list[str]], *, widths: list[int],
           right: set[int], bold_rows: frozenset[int] | set[int] = frozenset(),
           align_right: bool = False) -> None:
    """A grid with fixed column widths (mm): the layout never widens a column to fit."""
    table = d.add_table(rows=len(rows) + bool(head), cols=len(widths), style="Table Grid")
    table.autofit = False
    if align_right:
        table.alignment = WD_TABLE_ALIGNMENT.RIGHT
    layout = OxmlElement("w:tblLayout", {qn("w:type"): "fixed"})
    table._tbl.tblPr.append(layout)
    body = [(True, head)] if head else []
    for i, (is_head, cells) in enumerate(body + [(False, r) for r in rows]):
        for col, (text, width) in enumerate(zip(cells, widths, strict=True)):
            cell = table.rows[i].cells[col]
            table.columns[col].width = cell.width = Mm(width)  # LibreOffice reads the grid
            para = cell.paragraphs[0]
            para.paragraph_format.space_after = Pt(0)
            run = para.add_run(plain_text(text))
            run.font.size = Pt(8.5)
            run.bold = is_head or (i - bool(head)) in bold_rows
            if col in right:
                para.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    if head:
        flag = OxmlElement("w:tblHeader", {qn("w:val"): "true"})  # repeat on every page
        table.rows[0]._tr.get_or_add_trPr().append(flag)


def _small(run: Any) -> None:
    run.font.size = Pt(8.5)
    run.font.color.rgb = _GREY


def _save(d: Any) -> bytes:
    out = io.BytesIO()
    d.save(out)
    return stable_zip(out.getvalue())


def plain_text(value: str) -> str:
    """``value`` without the control characters XML can't hold (tab and newline kept)."""
    return _CONTROL.sub("", value)


def long_date(day: dt.date) -> str:
    """E.g. "31 May 2024", the same in every locale."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"  # not locale-dependent %B


def percent(value: float) -> str:
    """E.g. "12.5%", "16.13%", "20%"."""
    return f"{value:.2f}".rstrip("0").rstrip(".") + "%"
