"""Derive the shipped contract templates (documents/contract_templates/) from the Common Paper
originals in tests/fixtures/contract_templates/ (open-agreements' copies, CC BY 4.0).

Run from the repository root: ``python scripts/make_contract_templates.py``. The output is
the same bytes every run (fixed zip times), so a diff shows any change.

What changes, and nothing else (text, styles, fonts, header and footer are the originals'):

- The ``{name}`` placeholders become docxtpl tags (``{{ name }}``) with our field names
  (documents/contract.py lists them), and lose their yellow "fill me in" highlight.
- Drafting notes (``[Drafting note: …]``) go, with the options not chosen: the Order Form
  takes the Order Date as the date of last signature, a fee per Subscription Period with the
  quote's lines listed under it, a yearly uplift on renewal, pay by invoice, automatic renewal
  with a notice period, the sample SLA text; the optional rows we have no data for (Pilot, Use
  Limitations, Technical Support, Professional Services) are removed, as their notes say.
  The NDA takes a fixed MNDA term and a fixed term of confidentiality.
- The signature table's "Signature" row holds each party's ``[[sign:provider]]`` /
  ``[[sign:customer]]`` anchor (small, grey) and is at least 90 pt high and never split
  across pages, and the two party columns are 205 pt wide, so the 200 × 54 pt signature field
  placed just below an anchor (documents/placement.py) lands on blank space.
- The attribution the licence asks for ends the document (the footer already names the
  licence).
"""

from __future__ import annotations

import copy
import io
import re
import sys
import zipfile
from pathlib import Path

import docx
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor
from docx.table import Table
from docx.text.paragraph import Paragraph

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from documents.zips import stable_zip  # noqa: E402

SOURCE = ROOT / "tests" / "fixtures" / "contract_templates"
TARGET = ROOT / "documents" / "contract_templates"
ATTRIBUTION = {
    "order-form": "Based on the Common Paper Order Form, available at https://commonpaper.com. "
                  "Licensed under CC BY 4.0. Copyright Common Paper, Inc.",
    "mutual-nda": "Based on the Common Paper Mutual NDA, available at https://commonpaper.com. "
                  "Licensed under CC BY 4.0. Copyright Common Paper, Inc.",
}
SIGNATURE_GRID = (1675, 4100, 200, 4100)  # twips: label, party 1, gap, party 2 (205 pt each)
SIGNATURE_ROW_HEIGHT = 1800  # twips (90 pt): anchor line + 4 pt + 54 pt field + margins
_PLACEHOLDER = re.compile(r"\{([a-z_0-9]+)\}")


def cell_paragraphs(table: Table, row: int, col: int) -> list[Paragraph]:
    tc = table._tbl.tr_lst[row].tc_lst[col]
    return [Paragraph(p, None) for p in tc.iterchildren(qn("w:p"))]


def drop(*paragraphs: Paragraph) -> None:
    for p in paragraphs:
        p._p.getparent().remove(p._p)


def drop_rows(table: Table, *rows: int) -> None:
    trs = table._tbl.tr_lst
    for tr in [trs[r] for r in rows]:
        table._tbl.remove(tr)


def set_run(p: Paragraph, index: int, text: str) -> None:
    p.runs[index].text = text


def tags(p: Paragraph, names: dict[str, str]) -> None:
    """Every ``{name}`` in the paragraph's runs becomes ``{{ names[name] }}``, unhighlighted."""
    for run in p.runs:
        if _PLACEHOLDER.search(run.text):
            run.text = _PLACEHOLDER.sub(lambda m: "{{ " + names[m.group(1)] + " }}", run.text)
            for h in run._r.iter(qn("w:highlight")):
                h.getparent().remove(h)


def only_text(p: Paragraph, text: str) -> None:
    """The paragraph holds ``text`` in its first run's formatting, upright, unhighlighted."""
    for run in p.runs[1:]:
        run._r.getparent().remove(run._r)
    run = p.runs[0]
    run.text = text
    for tag in ("w:highlight", "w:i"):
        for el in run._r.iter(qn(tag)):
            el.getparent().remove(el)


def add_after(p: Paragraph, text: str) -> Paragraph:
    """A copy of ``p`` (its formatting) holding ``text``, right after it."""
    new = copy.deepcopy(p._p)
    p._p.addnext(new)
    para = Paragraph(new, p._parent)
    only_text(para, text)
    return para


def signature_table(table: Table, first: str, second: str) -> None:
    """Anchors in the Signature row (row 1), room for the fields, wide enough party columns."""
    grid = table._tbl.tblGrid
    for col, width in zip(grid.iterchildren(qn("w:gridCol")), SIGNATURE_GRID, strict=True):
        col.set(qn("w:w"), str(width))
    for tr in table._tbl.tr_lst:
        for tc, width in zip(tr.tc_lst, SIGNATURE_GRID, strict=True):
            tc.get_or_add_tcPr().get_or_add_tcW().set(qn("w:w"), str(width))
    tr = table._tbl.tr_lst[1]
    tr_pr = tr.get_or_add_trPr()
    for old in tr_pr.findall(qn("w:trHeight")) + tr_pr.findall(qn("w:cantSplit")):
        tr_pr.remove(old)
    tr_pr.append(tr_pr.makeelement(qn("w:cantSplit"), {}))
    tr_pr.append(tr_pr.makeelement(qn("w:trHeight"), {
        qn("w:val"): str(SIGNATURE_ROW_HEIGHT), qn("w:hRule"): "atLeast"}))
    for col, key in ((1, first), (3, second)):
        tc = tr.tc_lst[col]
        tc_pr = tc.get_or_add_tcPr()
        for v in tc_pr.findall(qn("w:vAlign")):
            tc_pr.remove(v)
        tc_pr.append(tc_pr.makeelement(qn("w:vAlign"), {qn("w:val"): "top"}))
        para = Paragraph(tc.iterchildren(qn("w:p")).__next__(), None)
        run = para.add_run(f"[[sign:{key}]]")
        run.font.size = Pt(7)
        run.font.color.rgb = RGBColor(0x80, 0x80, 0x80)
    # The table's rows stay with the sentence above it and with each other.
    for tr in table._tbl.tr_lst:
        for p in tr.iter(qn("w:p")):
            Paragraph(p, None).paragraph_format.keep_with_next = True


def attribution(document: docx.document.Document, text: str) -> None:
    p = document.add_paragraph()
    p.paragraph_format.space_before = Pt(12)
    run = p.add_run(text)
    run.font.size = Pt(7)
    run.font.name = "Arial"
    run.font.color.rgb = RGBColor(0x59, 0x59, 0x59)


def order_form() -> docx.document.Document:
    d = docx.Document(str(SOURCE / "common-paper-order-form.docx"))
    terms, signatures = d.tables
    names = {"key_terms_effective_date": "effective_date", "provider_name": "provider_name",
             "customer_name": "customer_name", "cloud_service": "cloud_service",
             "subscription_period": "subscription_period", "fees": "fees",
             "fee_unit": "fee_unit", "payment_frequency": "payment_frequency",
             "payment_due_from": "payment_due_from", "payment_terms_days": "notice_days"}
    # Edit bottom-up so row indexes stay those of the original.
    cell = cell_paragraphs(terms, 15, 1)  # Other Changes to Standard Terms
    only_text(cell[0], "{{ other_changes }}")
    drop_rows(terms, 14)  # Professional Services
    cell = cell_paragraphs(terms, 13, 1)  # SLA: the sample text, without its brackets
    drop(cell[0], cell[1])
    set_run(cell[2], 0, "")
    set_run(cell[2], len(cell[2].runs) - 1, ".")
    drop(cell_paragraphs(terms, 12, 0)[1])  # Additions and Modifications: its note
    drop_rows(terms, 10, 11)  # Use Limitations, Technical Support
    cell = cell_paragraphs(terms, 9, 1)  # Auto-renewal: renews, with a notice period
    drop(cell[0], cell[1], cell[3], cell[4])
    tags(cell[2], names)
    cell = cell_paragraphs(terms, 8, 1)  # Payment Process: pay by invoice
    drop(cell[0], cell[1], *cell[7:])
    set_run(cell[2], 0, "( x")
    set_run(cell[2], 1, " )")
    tags(cell[4], names)
    set_run(cell[6], 2, "{{ payment_terms_days }}")
    set_run(cell[6], 3, "")
    tags(cell[6], names)
    cell = cell_paragraphs(terms, 7, 1)  # Cloud Service Fees: per period, lines, uplift
    set_run(cell[0], 0, "[ x")
    set_run(cell[0], 1, " ]")
    tags(cell[0], names)
    set_run(cell[5], 0, "[ x")
    set_run(cell[5], 1, " ]")
    set_run(cell[5], 3, "{{ uplift_pct }}")
    drop(cell[1], cell[2], cell[3], cell[4], cell[6])
    for text in ("{%p endfor %}", "\t{{ line }}", "{%p for line in fee_lines %}"):
        add_after(cell[0], text)  # each goes right after the fee: they read in reverse
    tags(cell_paragraphs(terms, 6, 1)[0], names)  # Subscription Period
    drop_rows(terms, 5)  # Pilot
    cell = cell_paragraphs(terms, 3, 1)  # Order Date: the date of last signature
    drop(cell[0], cell[1], cell[3])
    tags(cell_paragraphs(terms, 2, 1)[0], names)  # Cloud Service
    cell = cell_paragraphs(terms, 1, 1)  # Framework Terms
    drop(cell[0], cell[1])
    tags(cell[2], names)

    row = {0: {"company_name": "provider_name"},
           2: {"provider_signatory_name": "provider_signer_name"},
           3: {"provider_signatory_title_display": "provider_signer_title"},
           4: {"provider_signatory_email": "provider_signer_email"}}
    other = {0: {"company_name": "customer_name"},
             2: {"customer_signatory_name": "customer_signer_name"},
             3: {"customer_signatory_title_display": "customer_signer_title"},
             4: {"customer_signatory_email": "customer_signer_email"}}
    for r, m in row.items():
        tags(cell_paragraphs(signatures, r, 1)[0], m)
        tags(cell_paragraphs(signatures, r, 3)[0], other[r])
    signature_table(signatures, "provider", "customer")
    attribution(d, ATTRIBUTION["order-form"])
    return d


def mutual_nda() -> docx.document.Document:
    d = docx.Document(str(SOURCE / "common-paper-mutual-nda.docx"))
    _intro, terms, signatures = d.tables
    names = {"purpose": "purpose", "effective_date": "effective_date",
             "mnda_term": "mnda_term", "confidentiality_term": "confidentiality_term",
             "confidentiality_term_start": "confidentiality_term_start",
             "governing_law": "governing_law", "jurisdiction": "jurisdiction",
             "changes_to_standard_terms": "other_changes",
             "party_1_name": "provider_signer_name", "party_2_name": "customer_signer_name",
             "party_1_title_display": "provider_signer_title",
             "party_2_title_display": "customer_signer_title",
             "party_1_company_display": "provider_name",
             "party_2_company_display": "customer_name",
             "party_1_email": "provider_signer_email", "party_2_email": "customer_signer_email"}
    for r in range(len(terms.rows)):
        cell = cell_paragraphs(terms, r, 1)
        if r in (2, 3):  # MNDA Term, Term of Confidentiality: the fixed term, chosen
            drop(cell[1])
        tags(cell[0], names)
    for r in (2, 3, 4, 5):
        tags(cell_paragraphs(signatures, r, 1)[0], names)
        tags(cell_paragraphs(signatures, r, 3)[0], names)
    signature_table(signatures, "provider", "customer")
    attribution(d, ATTRIBUTION["mutual-nda"])
    return d


def save(d: docx.document.Document, name: str) -> None:
    out = io.BytesIO()
    d.save(out)
    with zipfile.ZipFile(out) as z:
        xml = z.read("word/document.xml").decode()
    left = re.findall(r"(?<!\{)\{[a-z_0-9]+\}", xml)  # an original placeholder not converted
    TARGET.mkdir(exist_ok=True)
    (TARGET / name).write_bytes(stable_zip(out.getvalue()))
    print(f"{TARGET / name}: {len(out.getvalue()):,} bytes", left or "")


if __name__ == "__main__":
    save(order_form(), "order-form.docx")
    save(mutual_nda(), "mutual-nda.docx")
