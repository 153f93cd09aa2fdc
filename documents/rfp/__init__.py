"""Questions out of a customer's RFP file, and answers written back into that same file.

A pure library (no web, no store). DOCX questions come out directly; a workbook first needs
a mapping (which sheet, header row, question and answer columns): :func:`extract` returns
candidates, :func:`extract_xlsx` reads one mapping. A PDF's questions come from its text; its
answers go only in :func:`response_document`. :func:`write_answers` changes the answered
cells and paragraphs and nothing else: the other zip parts stay byte for byte.

Blocking (lxml, openpyxl, pdftotext): call from a worker thread.

Errors, in one place:

    RfpFileError (ValueError)   the file can't be read or written: damaged, not the kind
                                it claims, password-protected, macro-enabled, too big, a zip
                                bomb, no questions found, a location that isn't an answer
                                cell (a formula, a merged cell, a cell with text)
"""

from __future__ import annotations

from documents.rfp.docx_file import extract_docx, write_docx
from documents.rfp.errors import RfpFileError
from documents.rfp.model import Extraction, FileKind, Question, SheetCandidate, SheetMapping
from documents.rfp.pdf_file import extract_pdf
from documents.rfp.response import response_document
from documents.rfp.xlsx_file import detect_xlsx, extract_xlsx, write_xlsx
from documents.rfp.zipparts import MAX_BYTES

__all__ = [
    "MAX_BYTES", "Extraction", "FileKind", "Question", "RfpFileError", "SheetCandidate",
    "SheetMapping", "detect_xlsx", "extract", "extract_docx", "extract_pdf", "extract_xlsx",
    "response_document", "write_answers",
]


def extract(data: bytes, kind: FileKind | str, *, name: str = "the file",
            max_bytes: int = MAX_BYTES) -> Extraction:
    """Questions of a DOCX or PDF; for an XLSX, mapping candidates (``needs_mapping``)."""
    match _kind(kind):
        case FileKind.DOCX:
            return Extraction(FileKind.DOCX, tuple(extract_docx(data, name=name,
                                                                max_bytes=max_bytes)))
        case FileKind.XLSX:
            return Extraction(FileKind.XLSX, candidates=tuple(
                detect_xlsx(data, name=name, max_bytes=max_bytes)), needs_mapping=True)
        case FileKind.PDF:
            return Extraction(FileKind.PDF, tuple(extract_pdf(data, name=name,
                                                              max_bytes=max_bytes)))
    raise AssertionError(kind)  # pragma: no cover - _kind checked it


def write_answers(data: bytes, kind: FileKind | str, answers: dict[str, str], *,
                  name: str = "the file", max_bytes: int = MAX_BYTES) -> bytes:
    """The file with each answer (location → text) in place; refuses PDFs."""
    match _kind(kind):
        case FileKind.DOCX:
            return write_docx(data, answers, name=name, max_bytes=max_bytes)
        case FileKind.XLSX:
            return write_xlsx(data, answers, name=name, max_bytes=max_bytes)
        case FileKind.PDF:
            raise RfpFileError(f"{name} is a PDF: answers go in the response document "
                               "(response_document), not back into the PDF.")
    raise AssertionError(kind)  # pragma: no cover


def _kind(kind: FileKind | str) -> FileKind:
    try:
        return FileKind(str(kind).lower().lstrip("."))
    except ValueError as e:
        raise RfpFileError(f"{kind!r} is not a file kind we read (docx, xlsx or pdf).") from e
