"""Questions in a PDF, from its text (poppler's ``pdftotext``): numbered paragraphs that ask
for something. A PDF is never written back; its answers go in the response document."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from documents.rfp import zipparts
from documents.rfp.errors import RfpFileError
from documents.rfp.model import NUMBERING, Question, clean, reads_as_question

PDFTOTEXT = "pdftotext"


def extract_pdf(data: bytes, *, name: str = "the file", max_bytes: int = zipparts.MAX_BYTES,
                timeout: float = 60.0) -> list[Question]:
    """Numbered questions, page by page; locations ``pdf:<page>:<n>`` (both 1-based)."""
    zipparts.check_size(data, name, max_bytes)
    if not data.startswith(b"%PDF-"):
        raise RfpFileError(f"{name} is not a PDF; export it as PDF and upload that.")
    questions: list[Question] = []
    for page_number, page in enumerate(pages(data, name, timeout), start=1):
        for text in _numbered_paragraphs(page):
            if reads_as_question(text):
                questions.append(Question(f"pdf:{page_number}:{len(questions) + 1}", text))
    return questions


def pages(data: bytes, name: str, timeout: float) -> list[str]:
    """Each page's text (pdftotext), or :class:`RfpFileError` naming what went wrong."""
    with tempfile.TemporaryDirectory(prefix="dealdesk-rfp-") as tmp:
        path = Path(tmp) / "rfp.pdf"
        path.write_bytes(data)
        try:
            done = subprocess.run(  # noqa: S603 - fixed program, our own temp file
                [PDFTOTEXT, "-enc", "UTF-8", "-q", str(path), "-"],
                capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError as e:
            raise RfpFileError(f"{PDFTOTEXT} is missing: install poppler-utils") from e
        except subprocess.TimeoutExpired as e:
            raise RfpFileError(f"reading the text of {name} took over {timeout:g} s; "
                               "save it as a simpler PDF and upload that.") from e
    if done.returncode != 0:
        problem = "password-protected" if done.returncode == 1 else "damaged"
        raise RfpFileError(f"{name} can't be read (pdftotext: {problem}, exit "
                           f"{done.returncode}); upload an unprotected, undamaged PDF.")
    return done.stdout.decode("utf-8", errors="replace").split("\f")


def _numbered_paragraphs(page: str) -> list[str]:
    """Paragraphs that start with numbering; a paragraph ends at a blank line or the next
    numbered line."""
    out: list[str] = []
    current: list[str] | None = None
    for line in page.splitlines():
        if not line.strip():
            _flush(out, current)
            current = None
        elif NUMBERING.match(line):
            _flush(out, current)
            current = [line]
        elif current is not None:
            current.append(line)
    _flush(out, current)
    return out


def _flush(out: list[str], current: list[str] | None) -> None:
    if current:
        out.append(clean(" ".join(current)))
