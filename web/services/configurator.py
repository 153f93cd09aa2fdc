"""Configured quotes: add, change and remove configured items, set the deal's pricing
context, and keep every item's priced lines and the quote's totals current.

Each change is one transaction (the caller commits). A change to a submitted version makes
the next version first (items copied), so submitted versions stay as they were approved.
Adding an item prices only that item; the quote's totals are a SUM over its items. How an
item is priced and stored is ``store.quote_items`` (shared with the renewal quote).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cpq.catalog import CatalogError, Selection, bill_of_materials, configure
from cpq.loader import CatalogSpec
from cpq.money import MAX_MINOR, major
from cpq.pricing import CHANNELS, Pricer, PricingError
from store import audit
from store.audit import entity
from store.commerce import QuoteItem
from store.deals import follow_quotes
from store.models import Quote, QuoteVersion, User
from store.quote_items import Preview, deal_of, items_at, price, store_priced
from store.who import Who
from web.errors import Conflict, Forbidden, Invalid, NotFound
from web.params import MAX_QUANTITY
from web.services.catalog import spec_of

MAX_ITEMS = 5_000


def parse_selection(data: Any, where: str = "selection", depth: int = 0) -> Selection:
    """A JSON configuration ``{sku, quantity, attributes, options: [...]}``, checked."""
    if not isinstance(data, Mapping):
        raise Invalid(f"{where}: expected an object with sku and quantity", field=where)
    sku = data.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise Invalid(f"{where}: sku is required", field=where)
    qty = data.get("quantity", 1)
    if isinstance(qty, bool) or not isinstance(qty, int):
        raise Invalid(f"{where}: quantity must be a whole number", field=where)
    if not 0 < qty <= MAX_QUANTITY:
        raise Invalid(f"{where} ({sku}): quantity must be between 1 and {MAX_QUANTITY:,}, "
                      f"not {qty}", field=where)
    attrs = data.get("attributes") or {}
    if not isinstance(attrs, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()):
        raise Invalid(f"{where}: attributes map names to text values", field=where)
    options = data.get("options") or []
    if not isinstance(options, list) or depth > 6:
        raise Invalid(f"{where}: options must be a list (at most 6 levels deep)", field=where)
    return Selection(sku.strip(), qty, dict(attrs), tuple(
        parse_selection(o, f"{where}.options[{i}]", depth + 1) for i, o in enumerate(options)))


def parse_pct(value: Any, field: str) -> Decimal:
    try:
        text = str(value).strip()
        pct = Decimal(text or "0") if len(text) <= 16 else Decimal("NaN")
    except InvalidOperation:
        raise Invalid(f"{field.replace('_', ' ')}: {value!r} is not a percentage",
                      field=field) from None
    if not pct.is_finite() or not Decimal(0) <= pct <= Decimal(100):
        raise Invalid(f"{field.replace('_', ' ')}: a discount is between 0 and 100%",
                      field=field)
    return pct.quantize(Decimal("0.01"))


def _spec(session: Session, quote: Quote) -> tuple[int, CatalogSpec]:
    return spec_of(session, quote.catalog_version)


def preview(session: Session, quote: Quote, sel: Selection, discount: Decimal, *,
            defaults: bool = True) -> Preview:
    _, spec = _spec(session, quote)
    try:
        configured = configure(spec.catalog, sel, defaults=defaults)
        priced = (price(spec, quote, configured.selection, discount)
                  if configured.valid else None)
    except (CatalogError, PricingError) as e:
        raise Invalid(str(e), field="selection") from None
    bom = bill_of_materials(spec.catalog, configured.selection) if configured.valid else []
    return Preview(configured, priced, bom)


def items_of(session: Session, quote: Quote) -> list[QuoteItem]:
    return items_at(session, quote.id, quote.version)


def editable(session: Session, quote: Quote, actor: User) -> None:
    """Check the actor may change the quote; a submitted version becomes the next one."""
    if quote.owner_id != actor.id:
        raise Forbidden(f"only the quote's owner ({quote.owner.name}) can change it")
    if quote.status == "pending_approval":
        raise Conflict("this quote is waiting for approval: recall it before editing")
    if quote.status == "won":
        raise Conflict("this deal is won: its quote can't change any more")
    submitted = session.scalar(select(QuoteVersion.id).where(
        QuoteVersion.quote_id == quote.id, QuoteVersion.version == quote.version))
    if submitted is not None:
        next_version(session, quote)
    quote.status = "draft"
    quote.updated_at = dt.datetime.now(dt.UTC)


def next_version(session: Session, quote: Quote) -> None:
    """Move the quote to its next version, carrying the items over."""
    for item in items_of(session, quote):
        session.add(QuoteItem(
            quote_id=quote.id, version=quote.version + 1, position=item.position,
            selection=item.selection, manual_discount_pct=item.manual_discount_pct,
            priced=item.priced, list_total=item.list_total, net_total=item.net_total,
            cost_total=item.cost_total, max_discount_pct=item.max_discount_pct))
    quote.version += 1


def _valid_preview(session: Session, quote: Quote, sel: Selection, discount: Decimal,
                   defaults: bool) -> Preview:
    p = preview(session, quote, sel, discount, defaults=defaults)
    if not p.configured.valid:
        first = p.configured.violations[0]
        more = len(p.configured.violations) - 1
        raise Invalid(f"the configuration breaks rule {first.rule!r}: {first.message} "
                      f"({first.path})" + (f"; and {more} more" if more else ""),
                      field="selection")
    assert p.priced is not None
    if max(p.priced.list_total, p.priced.net_total, p.priced.cost_total) > MAX_MINOR:
        raise Invalid(f"{sel.sku} × {sel.quantity:,} comes to more than the largest amount, "
                      f"{major(MAX_MINOR, quote.currency)} {quote.currency}: lower the "
                      "quantity", field="selection")
    return p


def add_items(session: Session, quote: Quote, actor: User,
              items: Sequence[tuple[Selection, Decimal]], *,
              defaults: bool = True) -> list[QuoteItem]:
    """Add configured items (all valid, or none: the first broken one is refused by name).
    ``defaults`` off: the selections were edited in the builder and are complete."""
    editable(session, quote, actor)
    if quote.catalog_version is None:
        quote.catalog_version = _spec(session, quote)[0]
    count, last = session.execute(select(func.count(), func.max(QuoteItem.position)).where(
        QuoteItem.quote_id == quote.id, QuoteItem.version == quote.version)).one()
    if count + len(items) > MAX_ITEMS:
        raise Invalid(f"a quote holds at most {MAX_ITEMS:,} items", field="selection")
    added = []
    for n, (sel, discount) in enumerate(items, start=(last or 0) + 1):
        try:
            p = _valid_preview(session, quote, sel, discount, defaults)
        except Invalid as e:
            raise Invalid(f"item {n}: {e.message}" if len(items) > 1 else e.message,
                          field=e.field) from None
        item = QuoteItem(quote_id=quote.id, version=quote.version, position=n,
                         manual_discount_pct=str(discount))
        store_priced(item, p)
        added.append(item)
    session.add_all(added)
    session.flush()
    refresh_totals(session, quote)
    _audit(session, quote, actor, "quote.items_added", {
        "positions": [i.position for i in added][:100], "count": len(added),
        "skus": sorted({s.sku for s, _ in items})[:100]})
    return added


def _item(session: Session, quote: Quote, position: int) -> QuoteItem:
    item = session.scalar(select(QuoteItem).where(
        QuoteItem.quote_id == quote.id, QuoteItem.version == quote.version,
        QuoteItem.position == position))
    if item is None:
        raise NotFound(f"quote {quote.id} v{quote.version} has no item {position}")
    return item


def change_item(session: Session, quote: Quote, actor: User, position: int, sel: Selection,
                discount: Decimal, *, defaults: bool = False) -> QuoteItem:
    editable(session, quote, actor)
    item = _item(session, quote, position)
    p = _valid_preview(session, quote, sel, discount, defaults)
    item.manual_discount_pct = str(discount)
    store_priced(item, p)
    session.flush()
    refresh_totals(session, quote)
    _audit(session, quote, actor, "quote.item_changed", {"position": position, "sku": sel.sku,
                                                          "quantity": sel.quantity})
    return item


def remove_item(session: Session, quote: Quote, actor: User, position: int) -> None:
    editable(session, quote, actor)
    item = _item(session, quote, position)
    session.execute(delete(QuoteItem).where(QuoteItem.id == item.id))
    refresh_totals(session, quote)
    _audit(session, quote, actor, "quote.item_removed", {"position": position})


def set_pricing(session: Session, quote: Quote, actor: User, *, channel: str,
                partner_tier: str | None, header_discount: Decimal, price_book: str | None,
                latest_catalog: bool = False) -> None:
    """Change the deal's pricing context and reprice every item."""
    if channel not in CHANNELS:
        raise Invalid(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    editable(session, quote, actor)
    quote.channel = channel
    quote.partner_tier = partner_tier if channel in ("reseller", "distributor") else None
    quote.header_discount_pct = str(header_discount)
    quote.price_book = price_book or None
    if latest_catalog or quote.catalog_version is None:
        quote.catalog_version = spec_of(session)[0]
    reprice(session, quote)
    _audit(session, quote, actor, "quote.pricing_changed", {
        "channel": channel, "partner_tier": quote.partner_tier,
        "header_discount_pct": quote.header_discount_pct, "price_book": quote.price_book,
        "catalog_version": quote.catalog_version})


def reprice(session: Session, quote: Quote) -> None:
    _, spec = _spec(session, quote)
    try:
        Pricer(spec.catalog, spec.prices, deal_of(quote))  # the deal itself is checked once
    except PricingError as e:
        raise Invalid(str(e), field=e.field or "pricing") from None
    for item in items_of(session, quote):
        sel = parse_selection(item.selection)
        store_priced(item, _valid_preview(session, quote, sel,
                                           Decimal(item.manual_discount_pct), False))
    session.flush()
    refresh_totals(session, quote)


def refresh_totals(session: Session, quote: Quote) -> None:
    """The quote's amounts and approval facts from its items (one aggregate query)."""
    count, lst, net, cost, top = session.execute(select(
        func.count(), func.coalesce(func.sum(QuoteItem.list_total), 0),
        func.coalesce(func.sum(QuoteItem.net_total), 0),
        func.coalesce(func.sum(QuoteItem.cost_total), 0),
        func.coalesce(func.max(QuoteItem.max_discount_pct), 0.0)).where(
        QuoteItem.quote_id == quote.id, QuoteItem.version == quote.version)).one()
    if max(lst, net, cost) > MAX_MINOR:  # each item is bounded; MAX_ITEMS of them are not
        raise Invalid(f"the quote's total would be more than the largest amount, "
                      f"{major(MAX_MINOR, quote.currency)} {quote.currency}: split it",
                      field="selection")
    quote.list_amount, quote.net_amount, quote.cost_amount = int(lst), int(net), int(cost)
    quote.max_discount_pct = float(top) if count else None


def configured_facts(session: Session, quote: Quote) -> tuple[list[str], list[str]]:
    """Product families and channel-conflict SKUs over every item (at submission)."""
    families: set[str] = set()
    conflicts: set[str] = set()
    for item in items_of(session, quote):
        families.update(item.priced.get("families", []))
        conflicts.update(item.priced.get("conflicts", []))
    return sorted(families), sorted(conflicts)


def _audit(session: Session, quote: Quote, actor: User, action: str,
           data: dict[str, Any]) -> None:
    """The change's audit row; its deal's amount follows (every change of a quote's lines or
    pricing ends here, in its transaction)."""
    audit.append(session, event_key=f"quote-{quote.id}-v{quote.version}-{action}-"
                 f"{dt.datetime.now(dt.UTC).timestamp()}", actor=Who.user(actor), action=action,
                 entity=entity("quote", quote.id), data={"version": quote.version, **data})
    follow_quotes(session, quote.deal_id, Who.user(actor))
