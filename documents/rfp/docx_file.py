"""Questions in a Word document, and answers written back into the same document.

Questions are (a) numbered paragraphs (Word list numbering, directly or through the style, or
typed numbering such as "1.2", "a)", "Q3:") that ask for something, and (b) table cells
holding a label next to an empty cell: to its right, or below it in a two-row layout (a row of
labels over a row of empty cells), and single-cell empty boxes under a question. Locations
count body-level paragraphs and tables only (python-docx's ``Document.paragraphs`` and
``.tables``); a cell's ``c`` is its ``w:tc`` index within the row (merged cells count once).

Answers go into the answer cell (its first paragraph, keeping the paragraph properties, run
properties from the paragraph mark) or, for a paragraph question, into new paragraphs right
after it. Only the main document part changes; every other part is copied raw.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

from documents.rfp import zipparts
from documents.rfp.errors import RfpFileError
from documents.rfp.model import NUMBERING, Question, clean, reads_as_question

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
_LOCATION = re.compile(r"^docx:(?:p:(\d+)|t:(\d+):r:(\d+):c:(\d+))$")
_NOT_ANSWERABLE = ("tbl", "drawing", "pict", "object", "sdt", "fldChar", "fldSimple")
_RUN_ONLY = ("ins", "del", "moveFrom", "moveTo", "rPrChange")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CHECKBOXES = re.compile(r"^[\s☐☑☒□■|]*$")


def w(tag: str) -> str:
    return f"{{{W}}}{tag}"


@dataclass(frozen=True)
class _Styles:
    numbered: frozenset[str]
    headings: frozenset[str]


def extract_docx(data: bytes, *, name: str = "the file",
                 max_bytes: int = zipparts.MAX_BYTES) -> list[Question]:
    """The questions in a DOCX, in document order."""
    package = zipparts.open_package(data, "docx", name=name, max_bytes=max_bytes)
    root = package.xml(main_part(package))
    body = root.find(w("body"))
    if body is None:
        raise RfpFileError(f"{name} has no document body; save it again from Word.")
    return list(_questions(body, _styles(package)))


def _questions(body: etree._Element, styles: _Styles) -> Iterator[Question]:
    p_index = t_index = 0
    heading = ""
    since_table: list[tuple[str, bool]] = []  # (text, is heading) since the previous table
    for child in body:
        if child.tag == w("p"):
            text = paragraph_text(child)
            style = _style_id(child)
            is_heading = style in styles.headings
            if text:
                since_table.append((text, is_heading))
                if is_heading:
                    heading = text
                elif ((_has_numbering(child) or style in styles.numbered
                       or NUMBERING.match(text)) and reads_as_question(text)):
                    yield Question(f"docx:p:{p_index}", text, heading)
            p_index += 1
        elif child.tag == w("tbl"):
            yield from _table_questions(child, t_index, heading, since_table)
            since_table = []
            t_index += 1


def _table_questions(tbl: etree._Element, t: int, heading: str,
                     before: list[tuple[str, bool]]) -> Iterator[Question]:
    rows = [row.findall(w("tc")) for row in tbl.findall(w("tr"))]
    texts = [[cell_text(tc) for tc in row] for row in rows]
    context = before[-1][0] if before else heading
    if len(rows) == 1 and len(rows[0]) == 1 and answerable(rows[0][0]):
        # An empty box under its question: the heading (if one came since the last table)
        # and the paragraph just above.
        headed = [text for text, is_heading in before if is_heading]
        plain = [text for text, is_heading in before if not is_heading]
        if headed or plain:
            text = headed[-1] if headed else plain[-1]
            extra = plain[-1] if headed and plain else heading
            yield Question(f"docx:t:{t}:r:0:c:0", text, extra)
        return
    header = len(rows) >= 3 and sum(1 for x in texts[0] if x) >= 3
    for r, row in enumerate(rows):
        if r == 0 and header:
            continue
        for c in range(len(row) - 1):
            if _is_label(texts[r][c]) and answerable(row[c + 1]):
                col = _header_text(texts[0], c + 1) if header else ""
                yield Question(f"docx:t:{t}:r:{r}:c:{c + 1}", texts[r][c], col or context)
        # Two-row layout: a full row of labels over one row of empty cells.
        below = r + 1
        if (below < len(rows) and all(_is_label(x) for x in texts[r])
                and all(answerable(tc) for tc in rows[below])
                and not (below + 1 < len(rows) and not any(texts[below + 1]))):
            starts = {_grid_start(rows[below], i): i for i in range(len(rows[below]))}
            for c in range(len(row)):
                target = starts.get(_grid_start(row, c))
                if target is not None:
                    yield Question(f"docx:t:{t}:r:{below}:c:{target}", texts[r][c], context)


def _header_text(header: list[str], c: int) -> str:
    return header[c] if c < len(header) else ""


def _is_label(text: str) -> bool:
    return bool(text) and len(text) <= 4000 and any(ch.isalpha() for ch in text) \
        and not _CHECKBOXES.match(text)


def _grid_start(row: list[etree._Element], index: int) -> int:
    start = 0
    for tc in row[:index]:
        span = tc.find(f"{w('tcPr')}/{w('gridSpan')}")
        start += int(span.get(w("val"), "1")) if span is not None else 1
    return start


def answerable(tc: etree._Element) -> bool:
    """An empty cell we may write into: no text, no content control, field, picture or
    nested table, and not the continuation of a vertically merged cell."""
    if cell_text(tc):
        return False
    vmerge = tc.find(f"{w('tcPr')}/{w('vMerge')}")
    if vmerge is not None and vmerge.get(w("val")) != "restart":
        return False
    return not any(next(tc.iter(w(tag)), None) is not None for tag in _NOT_ANSWERABLE)


def paragraph_text(p: etree._Element) -> str:
    parts: list[str] = []
    for el in p.iter(w("t"), w("tab"), w("br"), w("cr")):
        parts.append(el.text or "" if el.tag == w("t") else " ")
    return clean("".join(parts))


def cell_text(tc: etree._Element) -> str:
    return clean(" ".join(paragraph_text(p) for p in tc.iter(w("p"))))


def _style_id(p: etree._Element) -> str:
    style = p.find(f"{w('pPr')}/{w('pStyle')}")
    return str(style.get(w("val"), "")) if style is not None else ""


def _has_numbering(p: etree._Element) -> bool:
    num_id = p.find(f"{w('pPr')}/{w('numPr')}/{w('numId')}")
    return num_id is not None and num_id.get(w("val")) != "0"


def _styles(package: zipparts.Package) -> _Styles:
    if "word/styles.xml" not in package.zip.namelist():
        return _Styles(frozenset(), frozenset())
    based: dict[str, str] = {}
    numbered: set[str] = set()
    headings: set[str] = set()
    for style in package.xml("word/styles.xml").iter(w("style")):
        sid = str(style.get(w("styleId"), ""))
        name_el = style.find(w("name"))
        name = str(name_el.get(w("val"), "")).lower() if name_el is not None else ""
        if name.startswith(("heading", "title")) or style.find(
                f"{w('pPr')}/{w('outlineLvl')}") is not None:
            headings.add(sid)
        num_id = style.find(f"{w('pPr')}/{w('numPr')}/{w('numId')}")
        if num_id is not None and num_id.get(w("val")) != "0":
            numbered.add(sid)
        parent = style.find(w("basedOn"))
        if parent is not None:
            based[sid] = str(parent.get(w("val"), ""))
    for sid in list(based):
        seen, cur = {sid}, based.get(sid)
        while cur and cur not in seen:
            if cur in numbered:
                numbered.add(sid)
            seen.add(cur)
            cur = based.get(cur)
    return _Styles(frozenset(numbered), frozenset(headings))


def main_part(package: zipparts.Package) -> str:
    if "_rels/.rels" in package.zip.namelist():
        for part in zipparts.part_targets(package, "_rels/.rels", "/officeDocument").values():
            if part in package.zip.namelist():
                return part
    return "word/document.xml"


def write_docx(data: bytes, answers: dict[str, str], *, name: str = "the file",
               max_bytes: int = zipparts.MAX_BYTES) -> bytes:
    """The DOCX with each answer at its location; only the main document part changes."""
    package = zipparts.open_package(data, "docx", name=name, max_bytes=max_bytes)
    part = main_part(package)
    original = package.read(part)
    root = package.xml(part)
    body = root.find(w("body"))
    if body is None:
        raise RfpFileError(f"{name} has no document body; save it again from Word.")
    paragraphs = body.findall(w("p"))
    tables = body.findall(w("tbl"))
    # Find every target before changing anything: inserted paragraphs shift the indices.
    targets = [(_target(location, paragraphs, tables, name), _plain(text))
               for location, text in answers.items()]
    for (kind, element, label), text in targets:
        if kind == "p":
            _answer_after(element, text)
        else:
            _answer_in_cell(element, label, text)
    return zipparts.replace_parts(package, {part: zipparts.serialize(root, original)})


def _target(location: str, paragraphs: list[etree._Element], tables: list[etree._Element],
            name: str) -> tuple[str, etree._Element, etree._Element | None]:
    m = _LOCATION.match(location)
    if not m:
        raise RfpFileError(f"{location!r} is not a DOCX location (docx:p:N or "
                           "docx:t:T:r:R:c:C).")
    if m.group(1) is not None:
        i = int(m.group(1))
        if i >= len(paragraphs):
            raise RfpFileError(f"{name} has no body paragraph {i} ({location}).")
        return "p", paragraphs[i], None
    t, r, c = int(m.group(2)), int(m.group(3)), int(m.group(4))
    rows = tables[t].findall(w("tr")) if t < len(tables) else []
    cells = rows[r].findall(w("tc")) if r < len(rows) else []
    if c >= len(cells):
        raise RfpFileError(f"{name} has no table cell at {location}.")
    if cell_text(cells[c]):
        raise RfpFileError(f"{name}: the cell at {location} already holds text; answers only "
                           "go into empty cells.")
    if not answerable(cells[c]):
        raise RfpFileError(f"{name}: the cell at {location} holds a form field, content "
                           "control, picture or table; answer it by hand.")
    return "c", cells[c], cells[c - 1] if c > 0 else None


def _plain(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _answer_in_cell(tc: etree._Element, label: etree._Element | None, text: str) -> None:
    p = tc.find(w("p"))
    if p is None:
        p = etree.SubElement(tc, w("p"))
    rpr = _mark_rpr(p)
    if rpr is None:
        rpr = _first_run_rpr(p) if next(p.iter(w("r")), None) is not None else None
    if rpr is None and label is not None:
        rpr = _first_run_rpr(label)
    for run in p.findall(w("r")):
        p.remove(run)
    lines = text.split("\n")
    p.append(_run(lines[0], rpr))
    anchor = p
    for line in lines[1:]:
        extra = etree.Element(w("p"))
        ppr = p.find(w("pPr"))
        if ppr is not None:
            extra.append(copy.deepcopy(ppr))
        extra.append(_run(line, rpr))
        anchor.addnext(extra)
        anchor = extra


def _answer_after(question: etree._Element, text: str) -> None:
    ppr = question.find(w("pPr"))
    new_ppr = copy.deepcopy(ppr) if ppr is not None else None
    if new_ppr is not None:  # body text: no numbering, no heading/list style, no section break
        for tag in ("pStyle", "numPr", "sectPr", "pPrChange", "outlineLvl"):
            for el in new_ppr.findall(w(tag)):
                new_ppr.remove(el)
    rpr = _first_run_rpr(question)
    if rpr is not None:
        for tag in ("b", "bCs", "rStyle"):
            for el in rpr.findall(w(tag)):
                rpr.remove(el)
    anchor = question
    for line in text.split("\n"):
        p = etree.Element(w("p"))
        if new_ppr is not None:
            p.append(copy.deepcopy(new_ppr))
        p.append(_run(line, rpr))
        anchor.addnext(p)
        anchor = p


def _mark_rpr(p: etree._Element) -> etree._Element | None:
    """The paragraph mark's run properties, as properties for a run."""
    mark = p.find(f"{w('pPr')}/{w('rPr')}")
    if mark is None:
        return None
    rpr = copy.deepcopy(mark)
    for tag in _RUN_ONLY:
        for el in rpr.findall(w(tag)):
            rpr.remove(el)
    return rpr


def _first_run_rpr(el: etree._Element) -> etree._Element | None:
    for run in el.iter(w("r")):
        rpr = run.find(w("rPr"))
        return copy.deepcopy(rpr) if rpr is not None else None
    return None


def _run(text: str, rpr: etree._Element | None) -> etree._Element:
    run = etree.Element(w("r"))
    if rpr is not None and len(rpr):
        run.append(copy.deepcopy(rpr))
    t = etree.SubElement(run, w("t"))
    t.set(_XML_SPACE, "preserve")
    t.text = text
    return run
