"""The response repository: every approved answer of a finished RFP (approved or completed),
searchable by the words of its question or its answer, newest RFP first, each hit with the
matched words marked. A hit that isn't in the content library yet can go in with one click
(``rfps.promote_answer``); one that is links to its item."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager

from store.library import query_words
from store.models import User
from store.rfps import Rfp, RfpQuestion
from web.errors import Forbidden
from web.paging import Listing, Page, matching, paginate
from web.services.rfps import may_read

FINISHED = ("approved", "completed")
SNIPPET = 280
"""Characters of an answer shown around its first match."""

Pieces = list[tuple[str, bool]]
"""Text in pieces, each marked if it matched: escape each, mark the matched ones."""


@dataclass(frozen=True)
class AnswerHit:
    question: RfpQuestion
    rfp: Rfp
    text: Pieces
    answer: Pieces


def search(session: Session, user: User, wanted: Listing) -> Page[AnswerHit]:
    """Approved answers of finished RFPs with every word of ``wanted.q`` in the question or
    the answer (all of them without words), 50 a page."""
    if not may_read(user):
        raise Forbidden("your roles don't read RFPs")
    words = query_words(wanted.q)
    q = (select(RfpQuestion).join(RfpQuestion.rfp).options(contains_eager(RfpQuestion.rfp))
         .where(Rfp.status.in_(FINISHED), RfpQuestion.status == "approved",
                RfpQuestion.answer.is_not(None)))
    for word in words:
        q = q.where(matching(word, RfpQuestion.text, RfpQuestion.answer))
    page = paginate(session, q.order_by(Rfp.updated_at.desc(), Rfp.id.desc(),
                                        RfpQuestion.position), wanted)
    marker = _marker(words)
    hits = [AnswerHit(row, row.rfp, _pieces(row.text, marker),
                      _pieces(_around(row.answer or "", marker), marker))
            for row in page.items]
    return Page(hits, page.total, page.number, page.size)


def _marker(words: list[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)),
                      re.IGNORECASE)


def _around(text: str, marker: re.Pattern[str] | None) -> str:
    """At most :data:`SNIPPET` characters of ``text``, from a little before its first match."""
    if len(text) <= SNIPPET:
        return text
    found = marker.search(text) if marker else None
    start = max(0, found.start() - 60) if found else 0
    start = min(start, len(text) - SNIPPET)
    return ("…" if start else "") + text[start:start + SNIPPET].strip() + \
        ("…" if start + SNIPPET < len(text) else "")


def _pieces(text: str, marker: re.Pattern[str] | None) -> Pieces:
    if marker is None:
        return [(text, False)]
    out: Pieces = []
    at = 0
    for m in marker.finditer(text):
        if m.start() > at:
            out.append((text[at:m.start()], False))
        out.append((m.group(0), True))
        at = m.end()
    if at < len(text):
        out.append((text[at:], False))
    return out
