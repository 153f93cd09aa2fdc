"""documents.rfp on real RFP files: questions out, answers back in, nothing else changed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import openpyxl
import pytest
from lxml import etree
from msoffcrypto.format.ooxml import OOXMLFile
from reportlab.pdfgen import canvas

from documents.rfp import (
    FileKind,
    RfpFileError,
    SheetMapping,
    detect_xlsx,
    extract,
    extract_docx,
    extract_pdf,
    extract_xlsx,
    response_document,
    write_answers,
)

FIXTURES = Path(__file__).parent / "fixtures" / "rfp"
ALASKA_FORMS = (FIXTURES / "alaska_ies_m2_submittal_forms_A-H_EARLIER_DRAFT.docx").read_bytes()
ALASKA_COSTS = (FIXTURES / "alaska_aries_support_cost_proposal.xlsx").read_bytes()
GSA_PRICING = (FIXTURES / "gsa_18f_rfq_ID09160019_labor_pricing_template.xlsx").read_bytes()
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def assert_only_parts_changed(before: bytes, after: bytes, changed: set[str]) -> None:
    """Same entries in the same order; every part not in ``changed`` byte-identical, raw
    compressed bytes and compression method included."""
    old, new = zipfile.ZipFile(io.BytesIO(before)), zipfile.ZipFile(io.BytesIO(after))
    assert [i.filename for i in old.infolist()] == [i.filename for i in new.infolist()]
    assert new.testzip() is None
    for a, b in zip(old.infolist(), new.infolist(), strict=True):
        assert a.compress_type == b.compress_type, a.filename
        if a.filename in changed:
            assert old.read(a.filename) != new.read(b.filename), a.filename
            continue
        assert old.read(a.filename) == new.read(b.filename), a.filename
        assert (a.CRC, a.compress_size, a.external_attr) == (b.CRC, b.compress_size,
                                                             b.external_attr), a.filename
        assert _raw(before, a) == _raw(after, b), a.filename


def _raw(data: bytes, info: zipfile.ZipInfo) -> bytes:
    start = info.header_offset
    name_len, extra_len = int.from_bytes(data[start + 26:start + 28], "little"), \
        int.from_bytes(data[start + 28:start + 30], "little")
    begin = start + 30 + name_len + extra_len
    return data[begin:begin + info.compress_size]


# DOCX ------------------------------------------------------------------------------------


def test_docx_questions_are_the_form_fields_and_answer_boxes() -> None:
    questions = {q.location: q for q in extract_docx(ALASKA_FORMS)}
    assert questions["docx:t:1:r:0:c:1"].text == "Company Name:"
    assert questions["docx:t:1:r:3:c:1"].text == "Alaska Business License #:"
    assert questions["docx:t:1:r:3:c:1"].context == "OFFEROR INFORMATION"
    assert questions["docx:t:9:r:3:c:1"].text == "Signature"
    # An empty box under a heading: the heading is the question, its instructions the context.
    box = questions["docx:t:10:r:0:c:0"]
    assert box.text == "SUBMITTAL FORM B – Experience and Qualifications"
    assert box.context.startswith("SPECIAL REQUIREMENTS")
    # A certification row whose response cell is empty (the others hold "True | False").
    assert questions["docx:t:5:r:17:c:2"].text.startswith("The bidder certifies")
    assert questions["docx:t:5:r:17:c:2"].context == "Response*"
    # Headings, header rows and list tables with no labels are not questions.
    texts = [q.text for q in questions.values()]
    assert "SUBMITTAL FORM G – IT Contractual Requirements" not in texts
    assert not any(loc.startswith(("docx:t:4:", "docx:t:16:")) for loc in questions)
    assert not any(loc.startswith("docx:p:") for loc in questions)
    assert extract(ALASKA_FORMS, "docx").questions == tuple(questions.values())


def _text(el: etree._Element) -> str:
    # Not itertext(): python-docx's element classes make it repeat run text.
    return "".join(t.text or "" for t in el.iter(f"{W}t"))


def _paragraph_texts(data: bytes, skip_cells: set[tuple[int, int, int]]) -> list[str]:
    """Every paragraph's text in document.xml, except those in the given table cells."""
    root = etree.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml"))
    body = root.find(f"{W}body")
    assert body is not None
    skipped: set[etree._Element] = set()
    tables = body.findall(f"{W}tbl")
    for t, r, c in skip_cells:
        skipped.add(tables[t].findall(f"{W}tr")[r].findall(f"{W}tc")[c])
    return [_text(p) for p in root.iter(f"{W}p")
            if not any(a in skipped for a in p.iterancestors(f"{W}tc"))]


def test_docx_answers_go_into_their_cells_and_nothing_else_changes() -> None:
    answers = {"docx:t:1:r:0:c:1": "Example Systems, Inc.",
               "docx:t:1:r:3:c:1": "AK-123456",
               "docx:t:10:r:0:c:0": "Ten years of Medicaid eligibility work.\nThree states."}
    out = write_answers(ALASKA_FORMS, FileKind.DOCX, answers)
    assert_only_parts_changed(ALASKA_FORMS, out, {"word/document.xml"})
    cells = {(1, 0, 1), (1, 3, 1), (10, 0, 0)}
    assert _paragraph_texts(out, cells) == _paragraph_texts(ALASKA_FORMS, cells)

    doc = docx.Document(io.BytesIO(out))
    before = docx.Document(io.BytesIO(ALASKA_FORMS))

    def cell(d: docx.document.Document, t: int, r: int, c: int) -> etree._Element:
        return d.tables[t].rows[r]._tr.tc_lst[c]

    assert _text(cell(doc, 1, 0, 1)) == "Example Systems, Inc."
    assert _text(cell(doc, 1, 3, 1)) == "AK-123456"
    box = [p.text for p in doc.tables[10].rows[0].cells[0].paragraphs]
    assert box[:2] == ["Ten years of Medicaid eligibility work.", "Three states."]
    # The cell keeps its paragraph properties; the run takes the paragraph mark's.
    old_p, new_p = cell(before, 1, 0, 1).find(f"{W}p"), cell(doc, 1, 0, 1).find(f"{W}p")
    assert old_p is not None and new_p is not None
    old_ppr, new_ppr = old_p.find(f"{W}pPr"), new_p.find(f"{W}pPr")
    assert etree.tostring(old_ppr) == etree.tostring(new_ppr)  # type: ignore[arg-type]
    assert new_p.find(f"{W}r/{W}rPr") is not None or old_p.find(f"{W}pPr/{W}rPr") is None
    # Every other table cell reads as before.
    for t, (a, b) in enumerate(zip(before.tables, doc.tables, strict=True)):
        for r, (ra, rb) in enumerate(zip(a.rows, b.rows, strict=True)):
            for c, (ca, cb) in enumerate(zip(ra._tr.tc_lst, rb._tr.tc_lst, strict=True)):
                if (t, r, c) not in cells:
                    assert _text(ca) == _text(cb), (t, r, c)


def test_docx_refuses_cells_with_text_and_unknown_locations() -> None:
    with pytest.raises(RfpFileError, match="already holds text"):
        write_answers(ALASKA_FORMS, "docx", {"docx:t:1:r:0:c:0": "x"})
    with pytest.raises(RfpFileError, match="no table cell"):
        write_answers(ALASKA_FORMS, "docx", {"docx:t:99:r:0:c:0": "x"})
    with pytest.raises(RfpFileError, match="not a DOCX location"):
        write_answers(ALASKA_FORMS, "docx", {"xlsx:Sheet1!A1": "x"})


def _numbered_docx() -> bytes:
    doc = docx.Document()
    doc.add_heading("Security questionnaire", level=1)
    doc.add_paragraph("Answer every question.")
    doc.add_paragraph("Describe how backups are tested.", style="List Number")
    doc.add_paragraph("Q2: Do you encrypt data at rest?")
    doc.add_paragraph("3. Our company history.")
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def test_docx_numbered_paragraphs_get_answer_paragraphs_after_them() -> None:
    data = _numbered_docx()
    questions = extract_docx(data)
    assert [(q.location, q.text) for q in questions] == [
        ("docx:p:2", "Describe how backups are tested."),
        ("docx:p:3", "Q2: Do you encrypt data at rest?")]
    assert questions[0].context == "Security questionnaire"
    out = write_answers(data, "docx", {"docx:p:2": "Monthly restores.\nLogged in the CMDB.",
                                       "docx:p:3": "Yes, AES-256."})
    assert_only_parts_changed(data, out, {"word/document.xml"})
    paragraphs = docx.Document(io.BytesIO(out)).paragraphs
    assert [p.text for p in paragraphs] == [
        "Security questionnaire", "Answer every question.", "Describe how backups are tested.",
        "Monthly restores.", "Logged in the CMDB.", "Q2: Do you encrypt data at rest?",
        "Yes, AES-256.", "3. Our company history."]
    answer = paragraphs[3]
    assert answer.style is not None and answer.style.name == "Normal"  # not numbered
    assert answer._p.find(f"{W}pPr/{W}numPr") is None


# XLSX ------------------------------------------------------------------------------------


def test_xlsx_needs_a_mapping_and_proposes_the_labor_lines_and_offeror_labels() -> None:
    result = extract(GSA_PRICING, "xlsx")
    assert result.needs_mapping and not result.questions
    by_mapping = {c.mapping: c for c in result.candidates}
    labor = by_mapping[SheetMapping("Labor Pricing", 3, "A", "B")]
    assert labor.answer_header == "Proposed BPA labor category"
    assert labor.question_count == 6
    assert labor.samples[0] == "Proposed BPA labor category — line 1"
    assert result.candidates[0] == labor  # a header row beats loose labels
    offeror = by_mapping[SheetMapping("CLIN Structure", None, "B", "C")]
    assert offeror.samples == ("Name of Offeror:",
                               "Offeror's Federal Supply Schedule (FSS) 70 Number:",
                               "Offeror's BPA Number:")
    # Zero-filled price columns and the formula column are not answer columns.
    assert not any(c.mapping.answer_column in ("D", "J") for c in result.candidates
                   if c.mapping.sheet == "Labor Pricing")


def test_xlsx_extract_with_a_mapping_letters_or_numbers() -> None:
    questions = extract_xlsx(GSA_PRICING, SheetMapping("CLIN Structure", None, 2, 3))
    assert [(q.location, q.text) for q in questions] == [
        ("xlsx:CLIN Structure!C3", "Name of Offeror:"),
        ("xlsx:CLIN Structure!C4", "Offeror's Federal Supply Schedule (FSS) 70 Number:"),
        ("xlsx:CLIN Structure!C5", "Offeror's BPA Number:")]
    lines = extract_xlsx(GSA_PRICING, SheetMapping("Labor Pricing", 3, "A", "C"))
    assert [q.location for q in lines] == [f"xlsx:Labor Pricing!C{r}" for r in range(4, 10)]
    assert lines[0].context == "Mapping FSS 70 labor category"
    with pytest.raises(RfpFileError, match="no questions found: in sheet 'Labor Pricing'"):
        extract_xlsx(GSA_PRICING, SheetMapping("Labor Pricing", 3, "A", "J"))  # formulas
    with pytest.raises(RfpFileError, match="no sheet 'Nope'"):
        extract_xlsx(GSA_PRICING, SheetMapping("Nope", 1, "A", "B"))


def _cells(data: bytes, part: str) -> dict[str, bytes]:
    root = etree.fromstring(zipfile.ZipFile(io.BytesIO(data)).read(part))
    return {str(c.get("r")): etree.tostring(c) for c in root.iter(f"{S}c")}


def _assert_only_cells_changed(before: bytes, after: bytes, part: str, refs: set[str]) -> None:
    old, new = _cells(before, part), _cells(after, part)
    assert set(new) - set(old) <= refs
    for ref in set(old) | set(new):
        if ref not in refs:
            assert old[ref] == new[ref], ref


def test_xlsx_answers_go_into_their_cells_keeping_styles() -> None:
    answers = {"xlsx:CLIN Structure!C3": "Example Systems, Inc.",
               "xlsx:Labor Pricing!B4": "Agile Coach",
               "xlsx:Labor Pricing!D4": "142.50",  # a 0 placeholder, not a formula
               "xlsx:Labor Pricing!K4": "new cell at the row's end"}
    out = write_answers(GSA_PRICING, "xlsx", answers)
    sheet1, sheet2 = "xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"
    assert_only_parts_changed(GSA_PRICING, out, {sheet1, sheet2})
    _assert_only_cells_changed(GSA_PRICING, out, sheet1, {"C3"})
    _assert_only_cells_changed(GSA_PRICING, out, sheet2, {"B4", "D4", "K4"})
    old, new = _cells(GSA_PRICING, sheet2), _cells(out, sheet2)
    assert b's="' in old["B4"] and etree.fromstring(new["B4"]).get("s") == \
        etree.fromstring(old["B4"]).get("s")
    wb = openpyxl.load_workbook(io.BytesIO(out))
    assert wb["CLIN Structure"]["C3"].value == "Example Systems, Inc."
    assert wb["Labor Pricing"]["B4"].value == "Agile Coach"
    assert wb["Labor Pricing"]["D4"].value == "142.50"
    assert wb["Labor Pricing"]["J4"].value == "=G4*I4"  # formulas untouched
    assert wb["Labor Pricing"]["B4"].style_id == openpyxl.load_workbook(
        io.BytesIO(GSA_PRICING))["Labor Pricing"]["B4"].style_id


def test_xlsx_write_beside_formulas_keeps_cached_values_and_calc_chain() -> None:
    answers = {"xlsx:Sheet1!B11": "65", "xlsx:Sheet1!A11": "Business analyst",
               "xlsx:Sheet1!M11": "between cells", "xlsx:Sheet1!B40": "a new row"}
    out = write_answers(ALASKA_COSTS, "xlsx", answers)
    part = "xl/worksheets/sheet1.xml"
    assert_only_parts_changed(ALASKA_COSTS, out, {part})  # calcChain, sharedStrings as they were
    _assert_only_cells_changed(ALASKA_COSTS, out, part, {"B11", "A11", "M11", "B40"})
    root = etree.fromstring(zipfile.ZipFile(io.BytesIO(out)).read(part))
    rows = [int(r.get("r", "0")) for r in root.iter(f"{S}row")]
    assert rows == sorted(rows) and 40 in rows
    row11 = next(r for r in root.iter(f"{S}row") if r.get("r") == "11")
    refs = [openpyxl.utils.cell.coordinate_from_string(str(c.get("r")))[0] for c in row11]
    assert refs == sorted(refs, key=openpyxl.utils.column_index_from_string)
    cached = openpyxl.load_workbook(io.BytesIO(out), data_only=True)["Sheet1"]
    assert cached["D27"].value == 355000 and cached["B40"].value == "a new row"
    formulas = openpyxl.load_workbook(io.BytesIO(out))["Sheet1"]
    original = openpyxl.load_workbook(io.BytesIO(ALASKA_COSTS))["Sheet1"]
    for row in original.iter_rows():
        for c in row:
            if isinstance(c.value, str) and c.value.startswith("="):
                assert formulas[c.coordinate].value == c.value


def test_xlsx_refuses_formulas_merged_cells_and_unknown_sheets() -> None:
    with pytest.raises(RfpFileError, match="Sheet1!D11 holds a formula"):
        write_answers(ALASKA_COSTS, "xlsx", {"xlsx:Sheet1!D11": "1"})
    with pytest.raises(RfpFileError, match="inside a merged range"):
        write_answers(ALASKA_COSTS, "xlsx", {"xlsx:Sheet1!B37": "x"})
    with pytest.raises(RfpFileError, match="no sheet 'Sheet9'"):
        write_answers(ALASKA_COSTS, "xlsx", {"xlsx:Sheet9!A1": "x"})
    with pytest.raises(RfpFileError, match="not an XLSX location"):
        write_answers(ALASKA_COSTS, "xlsx", {"docx:p:1": "x"})


def test_a_price_grid_without_questions_is_no_questions_found() -> None:
    with pytest.raises(RfpFileError, match=r"no questions found: .*'Sheet1'"):
        detect_xlsx(ALASKA_COSTS)


# PDF and the response document -----------------------------------------------------------


def test_pdf_numbered_questions_from_its_text() -> None:
    out = io.BytesIO()
    pdf = canvas.Canvas(out)
    for y, line in ((800, "Request for Proposal"), (770, "1. Describe your support model."),
                    (755, "It should cover weekends."), (725, "2. Company history."),
                    (695, "3.1 Do you hold ISO 27001?")):
        pdf.drawString(72, y, line)
    pdf.showPage()
    pdf.drawString(72, 800, "a) List your subprocessors.")
    pdf.save()
    questions = extract_pdf(out.getvalue())
    assert [(q.location, q.text) for q in questions] == [
        ("pdf:1:1", "1. Describe your support model. It should cover weekends."),
        ("pdf:1:2", "3.1 Do you hold ISO 27001?"),
        ("pdf:2:3", "a) List your subprocessors.")]
    with pytest.raises(RfpFileError, match="response document"):
        write_answers(out.getvalue(), "pdf", {"pdf:1:1": "x"})


def test_response_document_lists_questions_and_answers() -> None:
    questions = extract_docx(ALASKA_FORMS)[:2]
    data = response_document("Response to RFP 123", [
        (questions[0], "RFP 123"), (questions[1], ""), ("Free question?", "Line 1\nLine 2")])
    texts = [p.text for p in docx.Document(io.BytesIO(data)).paragraphs]
    assert texts == ["Response to RFP 123", "1. RFP NUMBER:", "RFP 123", "2. PROJECT NAME:",
                     "No answer yet.", "3. Free question?", "Line 1", "Line 2"]


# Bad input -------------------------------------------------------------------------------


def _zip(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return out.getvalue()


def _parts(data: bytes) -> dict[str, bytes]:
    zf = zipfile.ZipFile(io.BytesIO(data))
    return {n: zf.read(n) for n in zf.namelist()}


def encrypted(data: bytes, password: str = "s3cret") -> bytes:
    """``data`` (a DOCX or XLSX) encrypted with ``password`` as Office does it (ECMA-376
    agile encryption in an OLE compound file), by msoffcrypto-tool."""
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def test_password_protected_office_files_are_refused_as_such() -> None:
    for data, kind in ((ALASKA_FORMS, "docx"), (GSA_PRICING, "xlsx")):
        locked = encrypted(data)
        # Really encrypted: the password opens it again, unchanged.
        office = OOXMLFile(io.BytesIO(locked))
        office.load_key(password="s3cret", verify_password=True)
        opened = io.BytesIO()
        office.decrypt(opened)
        assert opened.getvalue() == data
        with pytest.raises(RfpFileError, match=r"locked\.\w+ is password-protected \(an "
                                               r"encrypted Office file\); remove the password"):
            extract(locked, kind, name=f"locked.{kind}")


def test_bad_files_raise_rfp_file_error_naming_the_problem() -> None:
    with pytest.raises(RfpFileError, match="damaged"):
        extract(ALASKA_FORMS[: len(ALASKA_FORMS) // 2], "docx")
    # Any other OLE file: an old binary .doc/.xls, or protected in a way we can't tell.
    with pytest.raises(RfpFileError, match="an OLE compound file: a password-protected"):
        extract(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "xlsx")
    xlsm = _zip({**_parts(GSA_PRICING), "xl/vbaProject.bin": b"\0" * 64})
    with pytest.raises(RfpFileError, match=r"macro-enabled workbook \(.xlsm\)"):
        extract(xlsm, "xlsx")
    with pytest.raises(RfpFileError, match=r"51\.0 MB, over the 50 MB limit"):
        extract(b"PK" + b"\0" * 50_999_998, "docx")
    with pytest.raises(RfpFileError, match="not an Excel workbook"):
        extract(ALASKA_FORMS, "xlsx")
    with pytest.raises(RfpFileError, match="not a zip package"):
        extract(b"just some text", "docx")
    with pytest.raises(RfpFileError, match="not a file kind"):
        extract(ALASKA_FORMS, "doc")


def test_a_workbook_of_numbers_has_no_questions() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for r in range(1, 20):
        for c in range(1, 6):
            ws.cell(r, c, r * c if c != 3 else None)
    out = io.BytesIO()
    wb.save(out)
    with pytest.raises(RfpFileError, match="no questions found"):
        extract(out.getvalue(), "xlsx")


def test_a_zip_bomb_is_refused_before_unpacking() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", b"<Types/>")
        with zf.open("word/document.xml", "w") as part:
            chunk = b"\0" * 1_000_000
            for _ in range(260):
                part.write(chunk)
    with pytest.raises(RfpFileError, match="unpacks to 260 MB, over the 250 MB limit"):
        extract(out.getvalue(), "docx")
