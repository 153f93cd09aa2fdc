"""The standard response document: every question and its answer, in a plain DOCX."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

from docx import Document

from documents.rfp.model import Question

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def response_document(title: str,
                      questions_with_answers: Iterable[tuple[Question | str, str]]) -> bytes:
    """A DOCX: the title, then per question a numbered heading (its text) and the answer
    (one paragraph per line; "No answer yet." when empty)."""
    doc = Document()
    doc.add_heading(_plain(title) or "Response", level=0)
    for n, (question, answer) in enumerate(questions_with_answers, start=1):
        text = question.text if isinstance(question, Question) else question
        doc.add_heading(f"{n}. {_plain(text)}", level=2)
        lines = _plain(answer).split("\n") if answer.strip() else ["No answer yet."]
        for line in lines:
            doc.add_paragraph(line)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _plain(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
