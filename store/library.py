"""The content library's tables and its full-text search (the use cases are in
web/services/library.py).

An item's every version is a ``library_item_versions`` row (version 1 when created), so an
edit never loses what it replaced. Tags are rows of their own (``library_item_tags``: an
indexed equality filter) and, space-joined, ``tags_text`` on the item, which the full-text
index reads.

**Full-text search** differs by dialect; migration 0008 makes both:

- SQLite: ``library_fts``, an FTS5 table with external content (``library_items``), kept in
  step by triggers, tokenizer ``porter unicode61``; ranked by ``bm25()`` with the title
  weighted 5, the tags 2 and the body 1, highlighted by ``highlight()`` / ``snippet()``.
- PostgreSQL: ``library_items.search``, a generated ``tsvector`` (title weight A, tags B,
  body C, ``english``) with a GIN index; ranked by ``ts_rank_cd``, highlighted by
  ``ts_headline``.

Both mark matches with the control characters :data:`START` and :data:`STOP`, which
validated text never holds (web/services/library.py refuses control characters), and
:func:`segments` cuts a marked text into ``(text, matched)`` pieces: pages escape each piece
and wrap matches in ``<mark>``; nothing from an item is ever trusted as HTML.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from store.models import Base, User, utcnow

KINDS = ("answer", "section", "case_study", "image", "product")
START = "\x02"
STOP = "\x03"
_WORD = re.compile(r"[^\W_]+")
MAX_QUERY_WORDS = 40


class LibraryItem(Base):
    """A reusable answer, proposal section, case study, image or product blurb."""

    __tablename__ = "library_items"
    __table_args__ = (Index("ix_library_items_review", "archived", "review_by", "owner_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="answer", index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    tags_text: Mapped[str] = mapped_column(Text, default="")
    """The tags, space-joined, for the full-text index (the tag rows are the source)."""
    docx_sha256: Mapped[str | None] = mapped_column(String(64))
    """A rich section: a DOCX fragment in the blob store (store/blobs.py), which proposals
    use instead of the text (``documents.section_template``: it may hold template tags)."""
    docx_fields: Mapped[list[str] | None] = mapped_column(JSON)
    """The template names the DOCX fragment uses, found when it was uploaded."""
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    usage_count: Mapped[int] = mapped_column(Integer, default=0)
    review_by: Mapped[dt.date | None] = mapped_column(Date)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship(lazy="joined")
    tag_rows: Mapped[list[LibraryItemTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="LibraryItemTag.tag")

    @property
    def tags(self) -> list[str]:
        return [t.tag for t in self.tag_rows]

    def due_for_review(self, today: dt.date) -> bool:
        return not self.archived and self.review_by is not None and self.review_by <= today


class LibraryItemTag(Base):
    __tablename__ = "library_item_tags"

    item_id: Mapped[int] = mapped_column(ForeignKey("library_items.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class LibraryItemVersion(Base):
    """One version of an item as it was saved (the newest equals the item)."""

    __tablename__ = "library_item_versions"
    __table_args__ = (UniqueConstraint("item_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("library_items.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    tags_text: Mapped[str] = mapped_column(Text, default="")
    docx_sha256: Mapped[str | None] = mapped_column(String(64))
    edited_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    edited_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    edited_by: Mapped[User] = relationship(lazy="joined")


@dataclass(frozen=True)
class Hit:
    """One search result: its rank from the backend, and its title and a body snippet with
    the matches between :data:`START` and :data:`STOP`."""

    item_id: int
    score: float
    """0 … 1: the backend's rank relative to the best hit of the same search (which is 1)."""
    title: str
    snippet: str


def segments(marked: str) -> list[tuple[str, bool]]:
    """``"a \\x02b\\x03 c"`` → ``[("a ", False), ("b", True), (" c", False)]``."""
    out: list[tuple[str, bool]] = []
    for i, part in enumerate(marked.split(START)):
        if i == 0:
            if part:
                out.append((part.replace(STOP, ""), False))
            continue
        hit, _, rest = part.partition(STOP)
        if hit:
            out.append((hit, True))
        if rest:
            out.append((rest.replace(STOP, ""), False))
    return out


def query_words(query: str) -> list[str]:
    """The words of a search, lower-cased, at most :data:`MAX_QUERY_WORDS`."""
    return [w.lower() for w in _WORD.findall(query)][:MAX_QUERY_WORDS]


def search(session: Session, words: list[str], *, any_word: bool = False, prefix: bool = True,
           limit: int = 20, kind: str | None = None, tag: str | None = None,
           marked: bool = True) -> list[Hit]:
    """Items (not archived) matching ``words``: all of them, or any with ``any_word``; the
    last word as a prefix with ``prefix`` (typing in a search box). Best first. Without
    ``marked`` the hits' title and snippet are empty (highlighting costs most of a query)."""
    if not words:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _search_pg(session, words, any_word, prefix, limit, kind, tag, marked)
    return _search_sqlite(session, words, any_word, prefix, limit, kind, tag, marked)


def _filters(kind: str | None, tag: str | None, params: dict[str, object]) -> str:
    sql = ""
    if kind:
        sql += " AND i.kind = :kind"
        params["kind"] = kind
    if tag:
        sql += (" AND EXISTS (SELECT 1 FROM library_item_tags t WHERE t.item_id = i.id"
                " AND t.tag = :tag)")
        params["tag"] = tag
    return sql


def _search_sqlite(session: Session, words: list[str], any_word: bool, prefix: bool,
                   limit: int, kind: str | None, tag: str | None, marked: bool) -> list[Hit]:
    # Every word is an FTS5 string (quotes doubled), so no query syntax gets through.
    terms = ['"' + w.replace('"', '""') + '"' for w in words]
    if prefix:
        terms[-1] += "*"
    params: dict[str, object] = {"q": (" OR " if any_word else " ").join(terms),
                                 "limit": limit, "start": START, "stop": STOP}
    # Only constant SQL is joined here; every value is a bound parameter.
    sql = ("SELECT i.id, bm25(library_fts, 5.0, 1.0, 2.0) AS rank," +  # noqa: S608
           (" highlight(library_fts, 0, :start, :stop),"
            " snippet(library_fts, 1, :start, :stop, '…', 24)" if marked else " '', ''") +
           " FROM library_fts JOIN library_items i ON i.id = library_fts.rowid"
           " WHERE library_fts MATCH :q AND NOT i.archived" + _filters(kind, tag, params) +
           " ORDER BY rank, i.id LIMIT :limit")
    return _relative([(row[0], -row[1], row[2], row[3] or "")
                      for row in session.execute(text(sql), params)])


def _search_pg(session: Session, words: list[str], any_word: bool, prefix: bool,
               limit: int, kind: str | None, tag: str | None, marked: bool) -> list[Hit]:
    # Each word is a bound parameter to plainto_tsquery (or to_tsquery with a prefix, the
    # word being letters and digits only), joined with tsquery's own operators.
    params: dict[str, object] = {"limit": limit}
    parts = []
    for n, w in enumerate(words):
        params[f"w{n}"] = w
        last = n == len(words) - 1
        parts.append(f"to_tsquery('english', :w{n} || ':*')" if prefix and last
                     else f"plainto_tsquery('english', :w{n})")
    query = (" || " if any_word else " && ").join(parts)
    headlines = " '', ''"
    if marked:
        params["body_opts"] = (f"StartSel={START}, StopSel={STOP}, MaxWords=35, "
                               "MinWords=15, MaxFragments=2, FragmentDelimiter=\" … \"")
        params["title_opts"] = f"StartSel={START}, StopSel={STOP}, HighlightAll=true"
        headlines = (" ts_headline('english', replace(i.title, '<', chr(1)), q.query,"
                     " :title_opts), ts_headline('english', replace(i.body, '<', chr(1)),"
                     " q.query, :body_opts)")
    sql = (f"WITH q AS (SELECT {query} AS query)"  # noqa: S608 - constant SQL, bound values
           " SELECT i.id, ts_rank_cd(i.search, q.query) AS rank," + headlines +
           " FROM library_items i, q WHERE i.search @@ q.query AND NOT i.archived" +
           _filters(kind, tag, params) + " ORDER BY rank DESC, i.id LIMIT :limit")
    # ts_headline's parser drops what looks like an HTML tag; with "<" hidden as \x01 (which
    # stored text never holds) it keeps the text as written.
    return _relative([(row[0], row[1], row[2].replace("\x01", "<"),
                       (row[3] or "").replace("\x01", "<"))
                      for row in session.execute(text(sql), params)])


def _relative(rows: list[tuple[int, float, str, str]]) -> list[Hit]:
    """Hits with their rank (higher is better) divided by the best one's."""
    best = max((r[1] for r in rows), default=0.0)
    return [Hit(item_id, round(rank / best, 4) if best > 0 else 1.0, title, snippet)
            for item_id, rank, title, snippet in rows]
