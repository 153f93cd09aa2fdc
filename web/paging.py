"""Search and paging for the list pages (quotes, envelopes, mail).

A list page takes ``q`` (case-insensitive text, matched as a substring) and ``page`` (from 1)
from the query string through one dependency, :data:`ListingDep`, and gets back a
:class:`Page`: the rows, the total that matched and where this page sits in it. Paging is by
offset: the lists sort by time, run to thousands of rows rather than millions, and a person
wants "page 3 of 12" more than a cursor. A page past the end shows the last one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

T = TypeVar("T")
PER_PAGE = 50


@dataclass(frozen=True)
class Listing:
    """What a list page was asked for: search text (stripped) and a page number."""

    q: str = ""
    page: int = 1


def listing(q: Annotated[str, Query(max_length=200, description="search text")] = "",
            page: Annotated[int, Query(ge=1, le=100_000, description="page, from 1")] = 1,
            ) -> Listing:
    return Listing(q.strip(), page)


ListingDep = Annotated[Listing, Depends(listing)]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    number: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first(self) -> int:
        """1-based position of the first row shown (0 when nothing matched)."""
        return (self.number - 1) * self.size + 1 if self.total else 0

    @property
    def last(self) -> int:
        return (self.number - 1) * self.size + len(self.items)

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def matching(text: str, *columns: Any) -> ColumnElement[bool]:
    """Any of ``columns`` contains ``text``, ignoring case; ``%`` and ``_`` match themselves."""
    return or_(*(c.icontains(text, autoescape=True) for c in columns))


def paginate(session: Session, query: Select[Any], wanted: Listing,
             size: int = PER_PAGE) -> Page[Any]:
    """One page of ``query`` (which must be ordered) and the count of all its rows."""
    total = session.scalar(select(func.count()).select_from(
        query.order_by(None).subquery())) or 0
    number = min(wanted.page, max(1, math.ceil(total / size)))
    rows = session.scalars(query.limit(size).offset((number - 1) * size)).unique().all()
    return Page(list(rows), total, number, size)
