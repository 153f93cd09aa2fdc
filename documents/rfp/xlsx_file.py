"""Questions in an Excel workbook, and answers written back into the same workbook.

Which columns hold questions is a person's call: :func:`detect_xlsx` proposes mappings (a
header row, a question column, an answer column, best first), :func:`extract_xlsx` reads the
questions of one mapping: every row below the header whose question cell holds text (or a line
number, under a header) and whose answer cell is empty. A formula cell is never an answer cell,
nor a cell hidden inside a merged range. Text is read from cached values (``data_only``).

:func:`write_xlsx` edits the worksheet XML of the answered sheets only (an inline string per
cell, the cell's style kept, rows and cells inserted in order); every other part, shared
strings, styles and calcChain included, is copied raw. openpyxl never saves the file: its
``save`` rewrites every part and drops cached values.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import openpyxl
from lxml import etree
from openpyxl.cell.cell import MergedCell
from openpyxl.utils import column_index_from_string, get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from documents.rfp import zipparts
from documents.rfp.errors import RfpFileError
from documents.rfp.model import (
    Question,
    SheetCandidate,
    SheetMapping,
    clean,
    reads_as_question,
)

S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
_REF = re.compile(r"^([A-Z]{1,3})([1-9][0-9]{0,6})$")
_QUESTION_HEADER = re.compile(r"question|requirement|description|criteri|item|role|category|"
                              r"service|feature|capabilit|label|topic", re.IGNORECASE)
_ANSWER_HEADER = re.compile(r"response|answer|comment|explanation|price|rate|cost|"
                            r"complian|reply|remarks|vendor|supplier|offeror|bidder",
                            re.IGNORECASE)
_NOT_A_QUESTION = re.compile(r"^\s*(\*|note\b|sub-?totals?\b|totals?\b)|\btotals?\s*:?\s*$",
                             re.IGNORECASE)
# A column of line numbers: no header, or "#", "No.", "Item", "Line"…
_LINE_HEADER = re.compile(r"^(|#|no\.?|nr\.?|num(ber)?|item( no\.?)?|line|ref\.?)$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SCAN_ROWS = 5000
_SCAN_COLUMNS = 60
_HEADER_ROWS = 30


@dataclass(frozen=True)
class _Cell:
    text: str
    number: bool
    formula: bool
    hidden: bool  # inside a merged range, not its top-left cell

    @property
    def empty(self) -> bool:
        return not self.text and not self.formula


_EMPTY = _Cell("", False, False, False)
Grid = dict[tuple[int, int], _Cell]


def s(tag: str) -> str:
    return f"{{{S}}}{tag}"


def column_number(column: str | int) -> int:
    if isinstance(column, int):
        if not 1 <= column <= 16384:
            raise RfpFileError(f"column {column} is out of range (1 to 16384).")
        return column
    try:
        number: int = column_index_from_string(column.strip().upper())
    except ValueError as e:
        raise RfpFileError(f"{column!r} is not a column letter (A to XFD).") from e
    return number


def _load(data: bytes, name: str, max_bytes: int) -> dict[str, Grid]:
    zipparts.open_package(data, "xlsx", name=name, max_bytes=max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about extensions it drops
            values = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
            formulas = openpyxl.load_workbook(io.BytesIO(data), data_only=False)
    except Exception as e:  # untrusted input through a third-party parser
        raise RfpFileError(f"{name} can't be read as a workbook ({type(e).__name__}); save it "
                           "again from Excel as .xlsx and upload that.") from e
    return {ws.title: _grid(ws, formulas[ws.title]) for ws in values.worksheets}


def _grid(values: Worksheet, formulas: Worksheet) -> Grid:
    grid: Grid = {}
    for row in values.iter_rows(max_row=min(values.max_row, _SCAN_ROWS),
                                max_col=min(values.max_column, _SCAN_COLUMNS)):
        for cell in row:
            if isinstance(cell, MergedCell):
                grid[(cell.row, cell.column)] = _Cell("", False, False, True)
                continue
            raw = formulas.cell(cell.row, cell.column).value
            formula = (raw is not None and not isinstance(raw, int | float | str | bool)) or (
                isinstance(raw, str) and raw.startswith("="))
            value = cell.value
            text = clean(str(value)) if value is not None else ""
            if text or formula:
                grid[(cell.row, cell.column)] = _Cell(
                    text, isinstance(value, int | float) and not isinstance(value, bool),
                    formula, False)
    return grid


def extract_xlsx(data: bytes, mapping: SheetMapping, *, name: str = "the file",
                 max_bytes: int = zipparts.MAX_BYTES) -> list[Question]:
    """The questions of one mapping; raises ``RfpFileError("no questions found: …")`` if none."""
    grids = _load(data, name, max_bytes)
    if mapping.sheet not in grids:
        raise RfpFileError(f"{name} has no sheet {mapping.sheet!r}; its sheets are "
                           f"{', '.join(map(repr, grids))}.")
    questions = list(_questions(grids[mapping.sheet], mapping))
    if not questions:
        raise RfpFileError(
            f"no questions found: in sheet {mapping.sheet!r}"
            f"{f' below row {mapping.header_row}' if mapping.header_row else ''}, no row has "
            f"a question in column {get_column_letter(column_number(mapping.question_column))} "
            f"and an empty answer cell in column "
            f"{get_column_letter(column_number(mapping.answer_column))}; choose other columns.")
    return questions


def _questions(grid: Grid, mapping: SheetMapping) -> Iterator[Question]:
    qcol, acol = column_number(mapping.question_column), column_number(mapping.answer_column)
    if qcol == acol:
        raise RfpFileError("the question and answer columns must differ.")
    header = mapping.header_row
    answer_header = grid.get((header, acol), _EMPTY).text if header else ""
    question_header = grid.get((header, qcol), _EMPTY).text if header else ""
    numbered = bool(answer_header) and _LINE_HEADER.match(question_header) is not None
    last = max((r for r, _ in grid), default=0)
    for row in range((header or 0) + 1, last + 1):
        q = grid.get((row, qcol), _EMPTY)
        a = grid.get((row, acol), _EMPTY)
        if q.hidden or q.formula or not q.text or not a.empty or a.hidden:
            continue
        if any(ch.isalpha() for ch in q.text):
            if _NOT_A_QUESTION.search(q.text):
                continue
            if header is None and not (q.text.endswith((":", "?")) or reads_as_question(q.text)):
                continue
            text = q.text
        elif numbered and q.number and float(q.text).is_integer():  # a line number
            text = f"{answer_header} — line {q.text}"
        else:
            continue
        ref = f"{get_column_letter(acol)}{row}"
        yield Question(f"xlsx:{mapping.sheet}!{ref}", text, answer_header)


def detect_xlsx(data: bytes, *, name: str = "the file",
                max_bytes: int = zipparts.MAX_BYTES) -> list[SheetCandidate]:
    """Likely mappings, best first; raises ``RfpFileError("no questions found: …")``."""
    grids = _load(data, name, max_bytes)
    found: list[tuple[int, SheetCandidate]] = []
    for sheet, grid in grids.items():
        seen: set[tuple[int | None, int, int]] = set()
        for header, qcol, acol, score in _proposals(grid):
            if (header, qcol, acol) in seen:
                continue
            seen.add((header, qcol, acol))
            mapping = SheetMapping(sheet, header, get_column_letter(qcol),
                                   get_column_letter(acol))
            questions = list(_questions(grid, mapping))
            if not questions:
                continue
            found.append((score + len(questions), SheetCandidate(
                mapping, _header(grid, header, qcol), _header(grid, header, acol),
                tuple(q.text for q in questions[:5]),
                len(questions))))
    if not found:
        raise RfpFileError(
            f"no questions found: {name} has no sheet with a column of questions or labels "
            f"next to an empty answer column (sheets: {', '.join(map(repr, grids))}); use "
            "a workbook with question and answer columns, or answer in the response document.")
    found.sort(key=lambda pair: -pair[0])
    return [candidate for _, candidate in found[:10]]


def _header(grid: Grid, header: int | None, column: int) -> str:
    return grid.get((header, column), _EMPTY).text if header else ""


def _proposals(grid: Grid) -> Iterator[tuple[int | None, int, int, int]]:
    """(header row, question column, answer column, score) to try."""
    columns = sorted({c for _, c in grid})
    # Label layouts: "Name of Offeror:" with an empty cell to its right, no header.
    for c in columns:
        yield None, c, c + 1, 0
    rows = sorted({r for r, _ in grid if r <= _HEADER_ROWS})
    for header in rows:
        titles = {c: grid[(header, c)].text for c in columns
                  if (header, c) in grid and any(ch.isalpha() for ch in grid[(header, c)].text)}
        if len(titles) < 2:
            continue
        below = [(r, c) for (r, c), cell in grid.items()
                 if r > header and cell.text and not cell.formula]
        filled = {c: sum(1 for _, col in below if col == c) for c in columns}
        question_columns = [c for c in columns if filled[c] >= 2][:3]
        for qcol in question_columns:
            for acol, title in titles.items():
                if acol == qcol:
                    continue
                score = (20 if _ANSWER_HEADER.search(title) else 0) + (
                    10 if _QUESTION_HEADER.search(titles.get(qcol, "")) else 0) + (
                    5 if acol == qcol + 1 else 0)
                yield header, qcol, acol, score


def write_xlsx(data: bytes, answers: dict[str, str], *, name: str = "the file",
               max_bytes: int = zipparts.MAX_BYTES) -> bytes:
    """The workbook with each answer in its cell; only the answered sheets' XML changes."""
    package = zipparts.open_package(data, "xlsx", name=name, max_bytes=max_bytes)
    sheets = _sheet_parts(package)
    by_part: dict[str, list[tuple[str, str, str]]] = {}
    for location, text in answers.items():
        sheet, ref = _parse_location(location)
        if sheet not in sheets:
            raise RfpFileError(f"{name} has no sheet {sheet!r} ({location}).")
        by_part.setdefault(sheets[sheet], []).append((ref, _CONTROL.sub("", text), location))
    replacements: dict[str, bytes] = {}
    for part, cells in by_part.items():
        original = package.read(part)
        root = package.xml(part)
        for ref, text, location in cells:
            _write_cell(root, ref, text, f"{name}: {location}")
        replacements[part] = zipparts.serialize(root, original)
    return zipparts.replace_parts(package, replacements)


def _parse_location(location: str) -> tuple[str, str]:
    sheet, bang, ref = location.removeprefix("xlsx:").rpartition("!")
    if not location.startswith("xlsx:") or not bang or not sheet or not _REF.match(ref):
        raise RfpFileError(f"{location!r} is not an XLSX location (xlsx:Sheet!B7).")
    return sheet, ref


def _sheet_parts(package: zipparts.Package) -> dict[str, str]:
    targets = zipparts.part_targets(package, "xl/_rels/workbook.xml.rels", "/worksheet")
    out: dict[str, str] = {}
    for sheet in package.xml("xl/workbook.xml").iter(s("sheet")):
        rid = str(sheet.get(f"{{{R}}}id", ""))
        if rid in targets:
            out[str(sheet.get("name", ""))] = targets[rid]
    return out


def _split(ref: str) -> tuple[int, int]:
    m = _REF.match(ref)
    if not m:
        raise RfpFileError(f"{ref!r} is not a cell reference.")
    return column_index_from_string(m.group(1)), int(m.group(2))


def _write_cell(root: etree._Element, ref: str, text: str, where: str) -> None:
    col, row_number = _split(ref)
    if _hidden_by_merge(root, col, row_number):
        raise RfpFileError(f"{where} is inside a merged range; write into its top-left cell.")
    sheet_data = root.find(s("sheetData"))
    if sheet_data is None:
        raise RfpFileError(f"{where}: the sheet has no cell data; save it again from Excel.")
    row = _row(sheet_data, row_number)
    cell = _cell(root, row, col, row_number)
    if cell.find(s("f")) is not None:
        raise RfpFileError(f"{where} holds a formula; formulas are never overwritten.")
    for child in list(cell):
        cell.remove(child)
    for attr in ("t", "cm", "vm", "ph"):
        cell.attrib.pop(attr, None)
    cell.set("t", "inlineStr")
    t = etree.SubElement(etree.SubElement(cell, s("is")), s("t"))
    t.set(_XML_SPACE, "preserve")
    t.text = text
    _widen(root, row, col, row_number)


def _hidden_by_merge(root: etree._Element, col: int, row: int) -> bool:
    for merge in root.iter(s("mergeCell")):
        first, _, last = str(merge.get("ref", "")).partition(":")
        if not last:
            continue
        (c0, r0), (c1, r1) = _split(first), _split(last)
        if c0 <= col <= c1 and r0 <= row <= r1 and (col, row) != (c0, r0):
            return True
    return False


def _positions(elements: list[etree._Element], column: bool = False) -> list[int]:
    """Each element's row number (or column number), counting implicit positions."""
    out: list[int] = []
    prev = 0
    for el in elements:
        value = el.get("r")
        if value:
            prev = _split(value)[0] if column else int(value)
        else:
            prev += 1
        out.append(prev)
    return out


def _row(sheet_data: etree._Element, number: int) -> etree._Element:
    rows = sheet_data.findall(s("row"))
    for el, at in zip(rows, _positions(rows), strict=True):
        if at == number:
            return el
        if at > number:
            new = etree.Element(s("row"), r=str(number))
            el.addprevious(new)
            return new
    return etree.SubElement(sheet_data, s("row"), r=str(number))


def _cell(root: etree._Element, row: etree._Element, col: int, row_number: int) -> etree._Element:
    cells = row.findall(s("c"))
    ref = f"{get_column_letter(col)}{row_number}"
    for el, at in zip(cells, _positions(cells, column=True), strict=True):
        if at == col:
            el.set("r", ref)
            return el
        if at > col:
            new = _new_cell(root, row, col, ref)
            el.addprevious(new)
            return new
    new = _new_cell(root, row, col, ref)
    row.append(new)
    return new


def _new_cell(root: etree._Element, row: etree._Element, col: int, ref: str) -> etree._Element:
    """A cell styled as Excel would show it: the row's style if set, else the column's."""
    cell = etree.Element(s("c"), r=ref)
    style = row.get("s") if row.get("customFormat") in ("1", "true") else None
    if style is None:
        for spec in root.iter(s("col")):
            if int(spec.get("min", "0")) <= col <= int(spec.get("max", "0")) and spec.get("style"):
                style = spec.get("style")
                break
    if style and style != "0":
        cell.set("s", style)
    return cell


def _widen(root: etree._Element, row: etree._Element, col: int, row_number: int) -> None:
    spans = row.get("spans")
    if spans and ":" in spans and " " not in spans:
        lo, hi = (int(x) for x in spans.split(":"))
        row.set("spans", f"{min(lo, col)}:{max(hi, col)}")
    dimension = root.find(s("dimension"))
    ref = dimension.get("ref", "") if dimension is not None else ""
    if dimension is not None and ":" in ref:
        (c0, r0), (c1, r1) = (_split(x) for x in ref.split(":"))
        dimension.set("ref", f"{get_column_letter(min(c0, col))}{min(r0, row_number)}:"
                             f"{get_column_letter(max(c1, col))}{max(r1, row_number)}")
