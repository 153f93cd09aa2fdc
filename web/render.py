"""Rendering: one template per page, each swappable region a named block.

``render`` serves the whole page, or only ``block`` when htmx asks (HX-Request), and always
sets ``Vary: HX-Request`` so caches keep the two apart.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from jinja2_fragments.fastapi import Jinja2Blocks
from markupsafe import Markup, escape

from cpq.money import major, minor_exponent
from web.auth import csrf_token
from web.services.costs import sees_costs

TEMPLATES = Jinja2Blocks(directory=str(Path(__file__).parent / "templates"))


def money(minor: int | None, currency: str = "") -> str:
    if minor is None:
        return "—"
    if not currency:
        return f"{minor / 100:,.2f}"
    return f"{major(int(minor), currency)} {currency}"


def unit_money(minor: str | Decimal | int, currency: str) -> str:
    """An exact unit price in minor units (a waterfall step) in major units, e.g. 1,140.00;
    fractions of a minor unit show as more decimals (96.6667)."""
    exp = minor_exponent(currency)
    value = Decimal(str(minor)).scaleb(-exp)
    shown = value.quantize(Decimal(1).scaleb(-exp))
    if shown != value:
        shown = value.quantize(Decimal(1).scaleb(-exp - 2))
    return f"{shown:,}"


def when(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC")


def due_label(value: dt.datetime | None) -> str:
    if value is None:
        return "no deadline"
    delta = value - dt.datetime.now(dt.UTC)
    secs = int(delta.total_seconds())
    late = secs < 0
    secs = abs(secs)
    amount = (f"{secs // 86400}d" if secs >= 86400 else f"{secs // 3600}h" if secs >= 3600
              else f"{max(secs // 60, 1)}m")
    return f"overdue by {amount}" if late else f"due in {amount}"


def is_overdue(value: dt.datetime | None) -> bool:
    return value is not None and value < dt.datetime.now(dt.UTC)


def label(value: str | None) -> str:
    return (value or "").replace("_", " ")


# http(s) only: a "javascript:" or "data:" URL never matches, so it stays text. An ellipsis
# ends a URL: what follows it was cut (a masked signing link), and is not linked.
_URL = re.compile(r"https?://[^\s<>\"'`…]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"


def linkify(text: str) -> Markup:
    """Plain text as HTML with its http(s) URLs as links; everything else escaped. Line
    breaks stay as they are (the page shows them with ``white-space: pre-wrap``)."""
    out: list[str] = []
    pos = 0
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(_TRAILING)  # "see https://x.test/a." links without the dot
        end = m.start() + len(url)
        out.append(escape(text[pos:m.start()]))
        if text.startswith("…", end) or url.endswith("//"):
            out.append(escape(url))
        else:
            out.append(Markup('<a href="{0}" rel="noopener">{0}</a>').format(url))
        pos = end
    out.append(escape(text[pos:]))
    return Markup("").join(out)


TEMPLATES.env.filters.update(money=money, unit_money=unit_money, when=when, due=due_label,
                             label=label, linkify=linkify)
def has_role(user: Any, *roles: str) -> bool:
    return user is not None and bool(user.roles.intersection(roles))


TEMPLATES.env.globals.update(is_overdue=is_overdue, has_role=has_role, sees_costs=sees_costs)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           block: str | None = None, status_code: int = 200) -> Response:
    ctx = {"user": getattr(request.state, "user", None), "csrf": csrf_token(request),
           **(context or {})}
    if block and is_htmx(request):
        response = TEMPLATES.TemplateResponse(request, template, ctx, block_name=block,
                                              status_code=status_code)
    else:
        response = TEMPLATES.TemplateResponse(request, template, ctx, status_code=status_code)
    response.headers["Vary"] = "HX-Request"
    return response
