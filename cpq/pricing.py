"""Pricing: every quote line's price waterfall, the quote's totals and the facts the
approval policy reads. Pure: the caller loads :class:`PriceRules` and the catalog.

The waterfall of one line, in order (docs/pricing.md has worked examples):

1. **list**: the product's list price in the deal's currency, or the deal channel's price
   book entry (web, reseller, distributor) when it has one;
2. **contracted**: the account's contracted price, when an account price book valid on the
   price date has the SKU. A contracted price is negotiated all-in: it replaces the list
   price and the volume schedule is not applied on top;
3. **volume**: the SKU's (or its family's) discount schedule at the line's quantity, in
   *range* mode (the whole quantity gets the tier it falls in) or *slab* mode (each unit
   gets the tier its position falls in; the unit price is the average);
4. **partner**: the channel tier's partner discount, on reseller and distributor deals,
   unless the list price came from a *net* price book (a distributor net price is already
   net);
5. **manual**: the rep's line discount, then the quote's header discount;

= **net**, rounded once to the currency's rounding rule; the line total is net × quantity.

Unit prices stay exact (``Decimal`` minor units) until that one rounding. A bundled option is
priced at zero (its bundle's price includes it).

Errors are :class:`PricingError`, each naming the line and the fix: a SKU without a price in
the deal's currency, a pinned price book in another currency or outside its dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Literal

from cpq.catalog import Catalog, Product, Selection

Channel = Literal["direct", "web", "reseller", "distributor"]
CHANNELS: tuple[Channel, ...] = ("direct", "web", "reseller", "distributor")
PARTNER_CHANNELS = ("reseller", "distributor")
BookKind = Literal["account", "channel"]
_ROUNDING = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "up": ROUND_CEILING,
             "down": ROUND_FLOOR}
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)


class PricingError(ValueError):
    """A line can't be priced as asked. ``field`` names the deal's setting at fault
    (``partner_tier``, ``price_book``) when it is one, so a form can show it there."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PriceBook:
    id: int
    name: str
    kind: BookKind
    currency: str
    entries: Mapping[str, int]
    """SKU → unit price, minor units."""
    account_id: int | None = None
    channel: Channel | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    net: bool = False
    """Prices are net partner prices: no partner discount on top."""

    def valid_on(self, day: dt.date) -> bool:
        return ((self.valid_from is None or self.valid_from <= day)
                and (self.valid_to is None or day <= self.valid_to))

    def validity(self) -> str:
        return (f"{self.valid_from.isoformat() if self.valid_from else 'any time'} to "
                f"{self.valid_to.isoformat() if self.valid_to else 'open-ended'}")


@dataclass(frozen=True)
class Tier:
    lower: int
    """First quantity of the tier (inclusive)."""
    upper: int | None
    """Last quantity of the tier (inclusive); None: no end."""
    discount_pct: Decimal


@dataclass(frozen=True)
class DiscountSchedule:
    id: int
    name: str
    mode: Literal["range", "slab"]
    tiers: tuple[Tier, ...]
    skus: tuple[str, ...] = ()
    families: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rounding:
    increment: int = 1
    """Round net unit prices to a multiple of this many minor units."""
    mode: str = "half_up"


@dataclass(frozen=True)
class PriceRules:
    books: Sequence[PriceBook] = ()
    schedules: Sequence[DiscountSchedule] = ()
    partner_discounts: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    """(channel, partner tier) → discount %."""
    channel_bands: Mapping[str, Decimal] = field(default_factory=dict)
    """channel → how far (%) below the direct price a partner's price may go."""
    rounding: Mapping[str, Rounding] = field(default_factory=dict)
    """currency → rounding rule (default: to the minor unit, half up)."""


@dataclass(frozen=True)
class Deal:
    currency: str
    price_date: dt.date
    account_id: int
    channel: Channel = "direct"
    partner_tier: str | None = None
    header_discount_pct: Decimal = _ZERO
    price_book: str | None = None
    """A pinned account or channel price book, by name: it must match the currency, the
    date, the account or the channel."""


@dataclass(frozen=True)
class LineIn:
    sku: str
    quantity: int
    manual_discount_pct: Decimal = _ZERO
    bundled: bool = False
    parent: int | None = None
    """Index of the bundle line this option belongs to."""


@dataclass(frozen=True)
class Step:
    name: str
    """list, contracted, volume, partner, manual, header, rounding."""
    unit: Decimal
    """The unit price after this step, minor units (exact until rounding)."""
    note: str


@dataclass(frozen=True)
class PricedLine:
    sku: str
    name: str
    family: str
    quantity: int
    parent: int | None
    list_unit: int
    net_unit: int
    list_total: int
    net_total: int
    cost_total: int
    discount_pct: float
    """Discount off list beyond the partner's standard discount (what approvals look at)."""
    steps: tuple[Step, ...]
    direct_unit: int | None = None
    """For partner deals: the direct price the channel guard compares with."""
    channel_conflict: bool = False


@dataclass(frozen=True)
class PricedQuote:
    currency: str
    lines: tuple[PricedLine, ...]
    list_total: int
    net_total: int
    cost_total: int
    max_discount_pct: float
    margin_pct: float
    channel_conflicts: tuple[str, ...]
    """SKUs whose partner price undercuts the direct price beyond the channel's band."""
    warnings: tuple[str, ...]


def round_minor(value: Decimal, rule: Rounding) -> int:
    if rule.mode not in _ROUNDING:
        raise PricingError(f"unknown rounding mode {rule.mode!r}")
    inc = Decimal(rule.increment)
    return int((value / inc).quantize(Decimal(1), rounding=_ROUNDING[rule.mode]) * inc)


def volume_unit(unit: Decimal, qty: int, schedule: DiscountSchedule) -> tuple[Decimal, str]:
    """The unit price after the schedule, and how it was reached."""
    if schedule.mode == "range":
        for t in schedule.tiers:
            if t.lower <= qty and (t.upper is None or qty <= t.upper):
                return (unit * (1 - t.discount_pct / _HUNDRED),
                        f"{schedule.name}: range tier {_tier_label(t)} → {t.discount_pct}%")
        return unit, f"{schedule.name}: no tier for quantity {qty}"
    total, parts = _ZERO, []
    for t in schedule.tiers:
        upper = qty if t.upper is None else min(t.upper, qty)
        n = upper - t.lower + 1
        if n <= 0:
            continue
        total += n * unit * (1 - t.discount_pct / _HUNDRED)
        parts.append(f"{n}×{t.discount_pct}%")
    covered = sum(max(0, (qty if t.upper is None else min(t.upper, qty)) - t.lower + 1)
                  for t in schedule.tiers)
    total += (qty - covered) * unit  # units no tier covers pay list
    return total / qty, f"{schedule.name}: slab {', '.join(parts) or 'no tier'}"


def _tier_label(t: Tier) -> str:
    return f"{t.lower}+" if t.upper is None else f"{t.lower}–{t.upper}"


class Pricer:
    """Prices lines for one deal; the price books and schedules are indexed once."""

    def __init__(self, catalog: Catalog, rules: PriceRules, deal: Deal) -> None:
        self.catalog, self.rules, self.deal = catalog, rules, deal
        self.rounding = rules.rounding.get(deal.currency, Rounding())
        pinned = self._pinned()
        usable = [b for b in rules.books
                  if b.currency == deal.currency and b.valid_on(deal.price_date)]
        self.account_books = [b for b in usable if b.kind == "account"
                              and b.account_id == deal.account_id
                              and (pinned is None or pinned.kind != "account" or b is pinned)]
        self.channel_books = self._channel_books(usable, deal.channel, pinned)
        self.direct_books = self._channel_books(usable, "direct", None)
        self.by_sku = {s: sch for sch in rules.schedules for s in sch.skus}
        self.by_family = {f: sch for sch in rules.schedules for f in sch.families}
        self.partner_pct = _ZERO
        if deal.channel in PARTNER_CHANNELS:
            if deal.partner_tier is None:
                raise PricingError(f"a {deal.channel} deal needs the partner's tier",
                                   field="partner_tier")
            key = (deal.channel, deal.partner_tier)
            if key not in rules.partner_discounts:
                raise PricingError(f"no partner discount for {deal.channel} tier "
                                   f"{deal.partner_tier!r}", field="partner_tier")
            self.partner_pct = rules.partner_discounts[key]

    def _pinned(self) -> PriceBook | None:
        if self.deal.price_book is None:
            return None
        book = next((b for b in self.rules.books if b.name == self.deal.price_book), None)
        if book is None:
            raise PricingError(f"no price book named {self.deal.price_book!r}", field="price_book")
        if book.currency != self.deal.currency:
            raise PricingError(f"price book {book.name!r} is in {book.currency}, the quote in "
                               f"{self.deal.currency}", field="price_book")
        if not book.valid_on(self.deal.price_date):
            raise PricingError(f"price book {book.name!r} is valid {book.validity()}, not on "
                               f"the quote's price date {self.deal.price_date.isoformat()}",
                               field="price_book")
        if book.kind == "account" and book.account_id != self.deal.account_id:
            raise PricingError(f"price book {book.name!r} belongs to another account",
                               field="price_book")
        if book.kind == "channel" and book.channel != self.deal.channel:
            raise PricingError(f"price book {book.name!r} is for the {book.channel} channel, "
                               f"the quote is {self.deal.channel}", field="price_book")
        return book

    @staticmethod
    def _channel_books(usable: Iterable[PriceBook], channel: str,
                       pinned: PriceBook | None) -> list[PriceBook]:
        books = [b for b in usable if b.kind == "channel" and b.channel == channel]
        if pinned is not None and pinned.kind == "channel":
            books = [pinned]
        return books

    def price(self, lines: Sequence[LineIn]) -> PricedQuote:
        priced = [self._line(i, line) for i, line in enumerate(lines)]
        list_total = sum(p.list_total for p in priced)
        net_total = sum(p.net_total for p in priced)
        cost_total = sum(p.cost_total for p in priced)
        conflicts = tuple(sorted({p.sku for p in priced if p.channel_conflict}))
        warnings = tuple(
            f"{sku}: the {self.deal.channel} price undercuts the direct price by more than "
            f"{self.rules.channel_bands.get(self.deal.channel, _ZERO)}%" for sku in conflicts)
        margin = 0.0 if net_total <= 0 else 100 * (net_total - cost_total) / net_total
        return PricedQuote(
            self.deal.currency, tuple(priced), list_total, net_total, cost_total,
            max((p.discount_pct for p in priced), default=0.0), round(margin, 2), conflicts,
            warnings)

    def _line(self, index: int, line: LineIn) -> PricedLine:
        product = self.catalog.product(line.sku)
        where = f"line {index + 1} ({line.sku})"
        if line.quantity <= 0:
            raise PricingError(f"{where}: quantity must be at least 1, not {line.quantity}")
        if not _ZERO <= line.manual_discount_pct <= _HUNDRED:
            raise PricingError(f"{where}: a discount is between 0 and 100%")
        cost_unit = product.costs.get(self.deal.currency, 0)
        if line.bundled:
            return self._bundled(product, line, cost_unit)
        steps: list[Step] = []
        unit, net_book = self._list_unit(product, self.channel_books, where)
        steps.append(Step("list", unit, net_book.name if net_book else "list price"))
        list_unit = unit
        unit, contracted = self._contracted(product, unit, steps)
        if not contracted:
            unit = self._volume(product, unit, line.quantity, steps)
        partner = _ZERO
        if self.partner_pct and not (net_book and net_book.net):
            partner = self.partner_pct
            unit = unit * (1 - partner / _HUNDRED)
            steps.append(Step("partner", unit, f"{self.deal.channel} {self.deal.partner_tier}: "
                                               f"{partner}%"))
        if line.manual_discount_pct:
            unit = unit * (1 - line.manual_discount_pct / _HUNDRED)
            steps.append(Step("manual", unit, f"line discount {line.manual_discount_pct}%"))
        if self.deal.header_discount_pct:
            unit = unit * (1 - self.deal.header_discount_pct / _HUNDRED)
            steps.append(Step("header", unit, f"quote discount "
                                              f"{self.deal.header_discount_pct}%"))
        net_unit = round_minor(unit, self.rounding)
        steps.append(Step("net", Decimal(net_unit), _rounding_note(self.rounding)))
        reference = list_unit * (1 - partner / _HUNDRED)
        discount = 0.0 if not reference else float(100 * (1 - net_unit / reference))
        direct_unit, conflict = self._guard(product, line, net_unit)
        return PricedLine(
            product.sku, product.name, product.family, line.quantity, line.parent,
            round_minor(list_unit, Rounding()), net_unit,
            round_minor(list_unit * line.quantity, Rounding()), net_unit * line.quantity,
            cost_unit * line.quantity, round(max(discount, 0.0), 2), tuple(steps),
            direct_unit, conflict)

    def _bundled(self, product: Product, line: LineIn, cost_unit: int) -> PricedLine:
        return PricedLine(product.sku, product.name, product.family, line.quantity,
                          line.parent, 0, 0, 0, 0, cost_unit * line.quantity, 0.0,
                          (Step("net", _ZERO, "included in the bundle's price"),))

    def _list_unit(self, product: Product, channel_books: Sequence[PriceBook],
                   where: str) -> tuple[Decimal, PriceBook | None]:
        for book in channel_books:
            if product.sku in book.entries:
                return Decimal(book.entries[product.sku]), book
        if self.deal.currency not in product.list_prices:
            have = ", ".join(sorted(product.list_prices)) or "none"
            raise PricingError(f"{where}: no {self.deal.currency} price for {product.sku} "
                               f"(it has: {have})")
        return Decimal(product.list_prices[self.deal.currency]), None

    def _contracted(self, product: Product, unit: Decimal,
                    steps: list[Step]) -> tuple[Decimal, bool]:
        for book in self.account_books:
            if product.sku in book.entries:
                unit = Decimal(book.entries[product.sku])
                steps.append(Step("contracted", unit, book.name))
                return unit, True
        return unit, False

    def _volume(self, product: Product, unit: Decimal, qty: int, steps: list[Step]) -> Decimal:
        schedule = self.by_sku.get(product.sku) or self.by_family.get(product.family)
        if schedule is None:
            return unit
        unit, note = volume_unit(unit, qty, schedule)
        steps.append(Step("volume", unit, note))
        return unit

    def _guard(self, product: Product, line: LineIn, net_unit: int) -> tuple[int | None, bool]:
        """Partner deals: the direct price of the same line (list → contracted → volume, no
        manual discounts) and whether the partner's price undercuts it beyond the band."""
        if self.deal.channel not in PARTNER_CHANNELS:
            return None, False
        unit, _ = self._list_unit(product, self.direct_books, product.sku)
        unit, contracted = self._contracted(product, unit, [])
        if not contracted:
            unit = self._volume(product, unit, line.quantity, [])
        direct = round_minor(unit, self.rounding)
        band = self.rules.channel_bands.get(self.deal.channel, _ZERO)
        return direct, Decimal(net_unit) < direct * (1 - band / _HUNDRED)


def _rounding_note(rule: Rounding) -> str:
    return (f"rounded {rule.mode.replace('_', ' ')}" +
            ("" if rule.increment == 1 else f" to {rule.increment} minor units"))


@dataclass(frozen=True)
class Item:
    """One top-level quote item: a configured product and the rep's line discount."""

    selection: Selection
    manual_discount_pct: Decimal = _ZERO


def flatten(catalog: Catalog, items: Iterable[Item]) -> list[LineIn]:
    """Quote lines for configured items: each product, then its options (nested), each
    option's quantity multiplied by its parent's. Options inherit the line discount."""
    lines: list[LineIn] = []

    def add(sel: Selection, qty: int, discount: Decimal, parent: int | None,
            bundled: bool) -> None:
        lines.append(LineIn(sel.sku, qty, discount, bundled, parent))
        me = len(lines) - 1
        product = catalog.product(sel.sku)
        for o in sel.options:
            opt = product.option(o.sku)
            add(o, qty * o.quantity, discount, me, bool(opt and opt.bundled))

    for item in items:
        add(item.selection, item.selection.quantity, item.manual_discount_pct, None, False)
    return lines
