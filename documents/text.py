"""The text of a document version, for diffs: a PDF's through poppler's ``pdftotext``, a Word
document's paragraphs and table cells in order. Blocking: call from a worker thread."""

from __future__ import annotations

import difflib
import io

import docx
from docx.document import Document as WordDocument

from documents.rfp.pdf_file import pages

TIMEOUT_S = 30.0


def lines(data: bytes, name: str = "document") -> list[str]:
    """The document's text as lines without trailing blanks; an empty list for a file that
    is neither a PDF nor a Word document."""
    if data.startswith(b"%PDF"):
        text = "\n".join(pages(data, name, TIMEOUT_S))
    elif data.startswith(b"PK"):
        text = "\n".join(_word_paragraphs(docx.Document(io.BytesIO(data))))
    else:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def _word_paragraphs(document: WordDocument) -> list[str]:
    out = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            out.append(" | ".join(cell.text for cell in row.cells))
    return out


def diff(a: bytes, b: bytes, a_name: str, b_name: str) -> list[str]:
    """A unified diff of two documents' text."""
    return list(difflib.unified_diff(lines(a, a_name), lines(b, b_name), a_name, b_name,
                                     lineterm=""))
