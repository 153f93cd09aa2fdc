"""A configured quote item priced and stored: what the quote builder (``web.services.
configurator``) and the renewal quote (``store.renewal_quotes``) share, so an item is priced
and written one way whoever makes it.

Pricing itself is :mod:`cpq.pricing`; this module turns a quote's pricing context into the
engine's :class:`~cpq.pricing.Deal`, and a priced configuration into a ``quote_items`` row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cpq.catalog import BomRow, Configured, Selection
from cpq.loader import CatalogSpec
from cpq.pricing import Deal, Item, PricedLine, PricedQuote, Pricer, flatten
from store.commerce import QuoteItem
from store.models import Quote


@dataclasses.dataclass(frozen=True)
class Preview:
    """A configuration as the builder shows it: rule findings, and prices when valid."""

    configured: Configured
    priced: PricedQuote | None
    bom: list[BomRow]


def deal_of(quote: Quote) -> Deal:
    """The quote's pricing context, as the engine reads it."""
    return Deal(currency=quote.currency, price_date=quote.created_at.date(),
                account_id=quote.account_id, channel=quote.channel,  # type: ignore[arg-type]
                partner_tier=quote.partner_tier,
                header_discount_pct=Decimal(quote.header_discount_pct),
                price_book=quote.price_book)


def price(spec: CatalogSpec, quote: Quote, sel: Selection, discount: Decimal) -> PricedQuote:
    """One configured item's lines through the engine (raises ``CatalogError`` for a SKU the
    catalog doesn't sell, ``PricingError`` for a line it can't price)."""
    lines = flatten(spec.catalog, [Item(sel, discount)])
    return Pricer(spec.catalog, spec.prices, deal_of(quote)).price(lines)


def selection_json(sel: Selection) -> dict[str, Any]:
    return {"sku": sel.sku, "quantity": sel.quantity, "attributes": dict(sel.attributes),
            "options": [selection_json(o) for o in sel.options]}


def stored_selection(data: Mapping[str, Any]) -> Selection:
    """A selection as :func:`selection_json` stored it (checked when it was first stored)."""
    return Selection(data["sku"], data["quantity"], dict(data.get("attributes") or {}),
                     tuple(stored_selection(o) for o in data.get("options") or ()))


def store_priced(item: QuoteItem, p: Preview) -> None:
    """The item's selection, priced lines, bill of materials, findings and totals."""
    priced = p.priced
    assert priced is not None
    item.selection = selection_json(p.configured.selection)
    item.priced = {
        "lines": [line_json(ln) for ln in priced.lines],
        "bom": [dataclasses.asdict(r) for r in p.bom],
        "alerts": [dataclasses.asdict(f) for f in p.configured.alerts],
        "applied": [dataclasses.asdict(f) for f in p.configured.applied],
        "families": sorted({ln.family for ln in priced.lines}),
        "conflicts": list(priced.channel_conflicts),
    }
    item.list_total, item.net_total = priced.list_total, priced.net_total
    item.cost_total, item.max_discount_pct = priced.cost_total, priced.max_discount_pct


def line_json(ln: PricedLine) -> dict[str, Any]:
    d = dataclasses.asdict(ln)
    d["steps"] = [{"name": s.name, "unit": str(s.unit), "note": s.note} for s in ln.steps]
    return d


def items_at(session: Session, quote_id: int, version: int) -> list[QuoteItem]:
    return list(session.scalars(select(QuoteItem).where(
        QuoteItem.quote_id == quote_id, QuoteItem.version == version)
        .order_by(QuoteItem.position)))
