"""A subscription's renewal quote: the next term's quote, in a renewal deal, on the current
price book.

The quote the term was sold on (``Subscription.quote_id``) is renewed item by item: the same
products, options, quantities and billing, priced by the pricing engine against the newest
catalog version, then set by the subscription's renewal pricing method (``cpq.renewal``:
``uplift``, ``list`` or ``same``). An item whose product (or one of its options) is no longer
sold, or that the current price books can't price, is carried at its contracted prices
uplifted; it is named in the item's alerts and in the audit row. The quote's totals are the
sums of its items, so its discount, and with it whether it is approved at once or waits as a
draft for the approval chain, follows from them (and from its lines': one line above today's
list doesn't hide another's discount).

A quote sold without catalog items (its amounts typed in) renews as amounts: list, net and
cost uplifted.

In the caller's transaction; the caller makes it once per term (``renewal_quote_id``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from cpq.catalog import BomRow, CatalogError, Configured, Finding, bill_of_materials
from cpq.loader import CatalogSpec
from cpq.pricing import Pricer, PricingError
from cpq.renewal import LinesMoved, RenewalMethod, carry, line_of, renew
from store.catalogs import load_spec
from store.commerce import QuoteItem
from store.deals import Deal, forecast_of
from store.models import Quote
from store.quote_items import Preview, deal_of, items_at, price, store_priced, stored_selection
from store.subscriptions import Subscription, renews_on, uplifted

EVERGREEN_MONTHS = 1


@dataclass(frozen=True)
class RenewalQuote:
    quote: Quote
    carried: tuple[str, ...]
    """SKUs of items no longer in the catalog, carried at their contracted prices."""


def make_renewal_quote(s: Session, sub: Subscription) -> RenewalQuote:
    """The renewal deal and its quote, priced; approved when it carries no discount, else a
    draft for the chain."""
    last = s.get(Quote, sub.quote_id)
    assert last is not None
    months = EVERGREEN_MONTHS if sub.term_end_action == "evergreen" else sub.term_months
    deal = Deal(account_id=sub.account_id, owner_id=sub.owner_id,
                name=f"Renewal: {sub.name} (term {sub.term_number + 1})"[:200],
                amount=0, currency=sub.currency, stage="quote",
                forecast_category=forecast_of("quote"), expected_close=renews_on(sub))
    s.add(deal)
    s.flush()
    quote = Quote(account_id=sub.account_id, owner_id=sub.owner_id, title=deal.name,
                  currency=sub.currency, list_amount=0, net_amount=0, cost_amount=0,
                  term_months=months, nonstandard_terms=[],
                  product_families=list(last.product_families), billing=last.billing,
                  channel=last.channel, partner_tier=last.partner_tier,
                  header_discount_pct=last.header_discount_pct, price_book=last.price_book,
                  deal_id=deal.id, created_at=dt.datetime.now(dt.UTC))
    s.add(quote)
    s.flush()
    contracted = items_at(s, last.id, last.version)
    carried: tuple[str, ...] = ()
    if contracted:
        carried = _price_items(s, quote, contracted, sub)
    else:
        quote.net_amount = uplifted(last.net_amount, sub.uplift_pct)
        quote.list_amount = max(uplifted(last.list_amount, sub.uplift_pct), quote.net_amount)
        quote.cost_amount = uplifted(last.cost_amount, sub.uplift_pct)
    # No discount overall and none on any line (a line above today's list must not hide
    # another's discount from the chain): nothing for the chain to decide.
    undiscounted = quote.net_amount >= quote.list_amount and not quote.max_discount_pct
    quote.status = "approved" if undiscounted else "draft"
    deal.amount = quote.net_amount
    return RenewalQuote(quote, carried)


def _price_items(s: Session, quote: Quote, contracted: list[QuoteItem],
                 sub: Subscription) -> tuple[str, ...]:
    """The contracted items renewed onto ``quote``; its totals from them. Returns the SKUs
    carried."""
    loaded = load_spec(s)
    spec = loaded[1] if loaded is not None else None
    partner_pct = Decimal(0)
    if loaded is not None and spec is not None:
        quote.catalog_version = loaded[0]
        partner_pct = _pricing_context(spec, quote)
    method: RenewalMethod = sub.renewal_pricing  # type: ignore[assignment]
    uplift = Decimal(sub.uplift_pct)
    carried, items = [], []
    for old in contracted:
        then = [line_of(d) for d in old.priced.get("lines", [])]
        sel = stored_selection(old.selection)
        preview: Preview | None = None
        if spec is not None:
            try:
                now = price(spec, quote, sel, Decimal(old.manual_discount_pct))
                preview = Preview(Configured(sel, (), (), ()),
                                  renew(now, then, method, uplift, partner_pct),
                                  bill_of_materials(spec.catalog, sel))
            except (CatalogError, PricingError, LinesMoved):
                preview = None
        if preview is None:
            carried.append(sel.sku)
            note = Finding("renewal-carried", f"{sel.sku} is no longer in the catalog (or "
                           "has no current price): renewed at its contracted price"
                           + ("" if method == "same" else f" uplifted {sub.uplift_pct}%"),
                           sel.sku)
            preview = Preview(Configured(sel, (), (note,), ()),
                              carry(then, method, uplift, quote.currency),
                              [BomRow(**r) for r in old.priced.get("bom", [])])
        item = QuoteItem(quote_id=quote.id, version=quote.version, position=old.position,
                         manual_discount_pct=old.manual_discount_pct)
        store_priced(item, preview)
        items.append(item)
    s.add_all(items)
    quote.list_amount = sum(i.list_total for i in items)
    quote.net_amount = sum(i.net_total for i in items)
    quote.cost_amount = sum(i.cost_total for i in items)
    quote.max_discount_pct = max(i.max_discount_pct for i in items)
    quote.product_families = sorted({f for i in items for f in i.priced["families"]})
    quote.channel_conflicts = sorted({c for i in items for c in i.priced["conflicts"]})
    return tuple(carried)


def _pricing_context(spec: CatalogSpec, quote: Quote) -> Decimal:
    """The deal's standard partner discount on the current catalog. A pinned price book the
    current catalog no longer has (or that has expired) is dropped: the renewal is priced on
    the channel's books instead."""
    try:
        return Pricer(spec.catalog, spec.prices, deal_of(quote)).partner_pct
    except PricingError as e:
        if e.field != "price_book":
            return Decimal(0)  # the deal itself can't be priced now: every item is carried
    quote.price_book = None
    try:
        return Pricer(spec.catalog, spec.prices, deal_of(quote)).partner_pct
    except PricingError:
        return Decimal(0)
