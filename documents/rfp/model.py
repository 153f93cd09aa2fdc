"""What ``documents.rfp`` hands out: questions, spreadsheet mapping candidates, extractions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class FileKind(StrEnum):
    DOCX = "docx"
    XLSX = "xlsx"
    PDF = "pdf"


@dataclass(frozen=True)
class Question:
    """One question (or requirement, or form field) found in a customer's file."""

    location: str
    """Where the answer goes, for :func:`documents.rfp.write_answers`: ``docx:p:57`` (after
    body paragraph 57), ``docx:t:2:r:5:c:1`` (body table 2, row 5, the row's ``w:tc`` 1),
    ``xlsx:Sheet1!D7``; ``pdf:3:12`` (page 3, question 12: answered only in the response
    document)."""
    text: str
    """The question as the customer wrote it (whitespace collapsed)."""
    context: str = ""
    """What frames it: the section heading, the answer column's header."""


@dataclass(frozen=True)
class SheetMapping:
    """Which columns of which sheet hold questions and answers (chosen by a person)."""

    sheet: str
    header_row: int | None
    """1-based row of the column headers; rows below it are read. None: no header, all rows."""
    question_column: str | int
    """Column letter(s) (``"B"``) or 1-based number."""
    answer_column: str | int
    """Column letter(s) or 1-based number; must differ from the question column."""


@dataclass(frozen=True)
class SheetCandidate:
    """A likely mapping found by :func:`documents.rfp.detect_xlsx`, best first."""

    mapping: SheetMapping
    question_header: str
    """The question column's header text ("" without a header row)."""
    answer_header: str
    samples: tuple[str, ...]
    """Up to five questions this mapping would give."""
    question_count: int
    """How many questions it would give in all."""


@dataclass(frozen=True)
class Extraction:
    """:func:`documents.rfp.extract`'s answer: questions, or (XLSX) mapping candidates."""

    kind: FileKind
    questions: tuple[Question, ...] = ()
    candidates: tuple[SheetCandidate, ...] = ()
    """XLSX only: pass one candidate's ``mapping`` (or a person's) to ``extract_xlsx``."""
    needs_mapping: bool = False
    """True for XLSX: which columns are questions is a person's call, see ``candidates``."""
    notes: tuple[str, ...] = field(default=())


# "1.", "1.2", "1.2.3)", "a)", "(b)", "iv.", "Q3:", "Q 3.", "Question 4:"
NUMBERING = re.compile(
    r"^\s*(?:(?:Q|Question)\s*\d+(?:\.\d+)*\s*[:.)-]?|\d+(?:\.\d+)+\.?|\d+[.)]|\(\w{1,4}\)"
    r"|[a-zA-Z][.)]|[ivxIVX]{1,5}[.)])\s+", re.IGNORECASE)
_ASKING = re.compile(
    r"\b(describe|explain|provide|list|identify|confirm|indicate|state|specify|detail|outline|"
    r"demonstrate|submit|attach|include|summari[sz]e|discuss|define|please|must|shall|should|"
    r"required?|requirements?)\b", re.IGNORECASE)
_QUESTION_START = re.compile(
    r"^(does|do|is|are|can|could|will|would|has|have|how|what|which|who|when|where|why)\b",
    re.IGNORECASE)


def clean(text: str) -> str:
    """Whitespace collapsed to single spaces."""
    return " ".join(text.split())


def reads_as_question(text: str) -> bool:
    """A sentence that asks for something: ends in "?", starts with a question word, or
    asks (describe, provide, must, shall…). Numbering is stripped first."""
    body = NUMBERING.sub("", text, count=1).strip()
    if len(body) < 8 or not any(ch.isalpha() for ch in body):
        return False
    return body.endswith("?") or bool(_QUESTION_START.match(body) or _ASKING.search(body))
