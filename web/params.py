"""Bounds for every number a request carries, declared once and used in every route signature
and request model (so the OpenAPI document states them too).

One rule for ids: a path or body id outside 1 … 2^31-1 (the store's id columns are INTEGER,
32 bits on PostgreSQL) is a 422 naming the parameter, before anything reaches the store; an id
in range that names nothing is a 404 (or, inside a body, a 422 naming the field). Amounts are
integer minor units from 0 to :data:`cpq.money.MAX_MINOR`. Form fields a route parses by hand
go through :func:`form_int`, :func:`form_number` and :func:`form_amount`, which apply the same
bounds.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field

from cpq.money import MAX_MINOR
from web.errors import Invalid

MAX_ID = 2**31 - 1
"""The largest id, version or position the store holds: INTEGER columns, 32-bit on
PostgreSQL (SQLite's would take 64 bits; a bound both share keeps one rule)."""
MAX_QUANTITY = 1_000_000
MAX_PAGE = 10_000
MAX_POINTS = 14_400
"""A PDF page's largest side in points (200 inches)."""
MAX_MONTHS = 120
LAST_DAY = dt.date(9999, 12, 30)
"""The last day a form may name: the day after it must still be a date."""
_WHOLE = re.compile(r"-?[0-9]{1,20}")

PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="an id (1 … 2^31-1)")]
QueryId = Annotated[int, Query(ge=0, le=MAX_ID)]
RowId = Annotated[int, Field(ge=1, le=MAX_ID, description="an id (1 … 2^31-1)")]
Version = Annotated[int, Field(ge=1, le=MAX_ID, description="a version number")]
Position = Annotated[int, Path(ge=1, le=MAX_ID, description="the item's position (1, 2…)")]
Amount = Annotated[int, Field(ge=0, le=MAX_MINOR, description="minor units (cents), "
                                                               f"0 … {MAX_MINOR}")]
QueryAmount = Annotated[int | None, Query(ge=0, le=MAX_MINOR,
                                          description=f"minor units, 0 … {MAX_MINOR}")]
Months = Annotated[int, Field(ge=1, le=MAX_MONTHS, description="contract term in months")]
Percent = Annotated[str, Field(max_length=16, description="a percentage from 0 to 100, as text "
                                                         "(e.g. \"12.5\")")]
Page = Annotated[int, Field(ge=1, le=MAX_PAGE, description="1-based page")]
Points = Annotated[int, Field(ge=0, le=MAX_POINTS)]
TaskId = Annotated[str, Path(min_length=1, max_length=300, description="a task's id")]
BookName = Annotated[str, Path(min_length=1, max_length=200, description="a price book's name")]
Label = Annotated[str, Field(max_length=200)]


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("text must not hold a NUL character (\\u0000)")
    return text


NoNul = AfterValidator(_no_nul)
"""For text that goes to a workflow rather than the store (which refuses NUL itself): a
comment or reason in history would fail its projection on PostgreSQL, attempt after attempt."""


def form_int(value: object, field: str, low: int, high: int, *,
             what: str = "a whole number") -> int | None:
    """A whole number typed into a form, ``None`` when left empty; 422 naming ``field``
    outside ``low … high``."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return None
    if not _WHOLE.fullmatch(text):
        raise Invalid(f"{field.replace('_', ' ')}: {text[:40]!r} is not {what}", field=field)
    number = int(text)
    if not low <= number <= high:
        raise Invalid(f"{field.replace('_', ' ')}: must be from {low:,} to {high:,}, not "
                      f"{number:,}", field=field)
    return number


def form_number(value: object, field: str, low: Decimal, high: Decimal) -> Decimal | None:
    """A decimal number typed into a form (``None`` when empty), finite and in range."""
    text = value.strip().replace(",", "") if isinstance(value, str) else ""
    if not text:
        return None
    try:
        number = Decimal(text) if len(text) <= 30 else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise Invalid(f"{field.replace('_', ' ')}: {text[:40]!r} is not a number", field=field)
    if not low <= number <= high:
        raise Invalid(f"{field.replace('_', ' ')}: must be from {low:,} to {high:,}",
                      field=field)
    return number


def form_amount(value: object, field: str) -> int | None:
    """An amount in major units with cents (the inbox filters: any currency), as minor units."""
    number = form_number(value, field, Decimal(0), Decimal(MAX_MINOR) / 100)
    return None if number is None else int((number * 100).to_integral_value())
