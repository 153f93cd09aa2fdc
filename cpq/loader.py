"""The catalog document (YAML, see dealdesk/demo/catalog.yaml) → catalog and price rules.

One document holds products, product rules, discount schedules, price books, partner
discounts and channel bands, rounding and tax rates. It is checked whole before anything is
stored: every error names its place (``products[3].options[1]: unknown SKU 'X'``).
Amounts are written in major units ("1200.00") and kept in minor units.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cpq.catalog import (
    CONDITION_OPS,
    RULE_KINDS,
    Attribute,
    Catalog,
    CatalogError,
    Component,
    Condition,
    Option,
    Product,
    ProductRule,
)
from cpq.money import to_minor
from cpq.pricing import (
    CHANNELS,
    DiscountSchedule,
    PriceBook,
    PriceRules,
    Rounding,
    Tier,
)

SECTIONS = ("products", "rules", "schedules", "price_books", "partners", "rounding", "taxes")
MAX_INT = 10**9
_WHOLE = re.compile(r"-?[0-9]{1,12}")


@dataclass(frozen=True)
class TaxRate:
    name: str
    pct: Decimal


@dataclass
class CatalogSpec:
    catalog: Catalog
    prices: PriceRules
    taxes: dict[str, list[TaxRate]] = field(default_factory=dict)
    """Account region → tax lines."""


def _req(d: Any, key: str, where: str) -> Any:
    d = _map(d, where)
    if key not in d or d[key] in (None, ""):
        raise CatalogError(f"{where}: {key} is required")
    return d[key]


def _map(d: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise CatalogError(f"{where}: expected a mapping")
    return d


def _list(d: Any, where: str) -> list[Any]:
    if d is None:
        return []
    if not isinstance(d, list):
        raise CatalogError(f"{where}: expected a list")
    return d


def _int(v: Any, where: str) -> int:
    """A whole number (a quantity, a tier's bound, an increment) within ±:data:`MAX_INT`."""
    text = str(v).strip()
    if isinstance(v, bool) or not (isinstance(v, int) or _WHOLE.fullmatch(text)):
        raise CatalogError(f"{where}: {text[:40]!r} is not a whole number")
    number = int(v)
    if abs(number) > MAX_INT:
        raise CatalogError(f"{where}: {number} is out of range (at most {MAX_INT:,})")
    return number


def _pct(v: Any, where: str) -> Decimal:
    try:
        p = Decimal(str(v))
    except InvalidOperation:
        raise CatalogError(f"{where}: {v!r} is not a percentage") from None
    if not p.is_finite() or not Decimal(0) <= p <= Decimal(100):
        raise CatalogError(f"{where}: a percentage is between 0 and 100, not {v}")
    return p


def _amounts(d: Any, where: str) -> dict[str, int]:
    out = {}
    for cur, amount in _map(d or {}, where).items():
        if not (isinstance(cur, str) and len(cur) == 3 and cur.isupper()):
            raise CatalogError(f"{where}: {cur!r} is not an ISO 4217 currency code")
        try:
            out[cur] = to_minor(amount, cur)
        except ValueError as e:
            raise CatalogError(f"{where}.{cur}: {e}") from None
        if out[cur] < 0:
            raise CatalogError(f"{where}.{cur}: a price can't be negative")
    return out


def _date(v: Any, where: str) -> dt.date | None:
    if v in (None, ""):
        return None
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v))
    except ValueError:
        raise CatalogError(f"{where}: {v!r} is not a date (YYYY-MM-DD)") from None


def _product(d: Any, where: str) -> Product:
    d = _map(d, where)
    opts = []
    for j, o in enumerate(_list(d.get("options"), f"{where}.options")):
        o = _map(o, f"{where}.options[{j}]")
        at = f"{where}.options[{j}]"
        opts.append(Option(str(_req(o, "sku", at)), bool(o.get("required", False)),
                           _int(o.get("min_qty", 0), f"{at}.min_qty"),
                           _int(o.get("max_qty", 1), f"{at}.max_qty"),
                           _int(o.get("default_qty", 0), f"{at}.default_qty"),
                           bool(o.get("bundled", False))))
    comps = [Component(str(_req(c, "sku", f"{where}.components[{j}]")),
                       _int(_req(c, "quantity", f"{where}.components[{j}]"),
                            f"{where}.components[{j}].quantity"))
             for j, c in enumerate(_list(d.get("components"), f"{where}.components"))]
    attrs = [Attribute(str(_req(a, "name", f"{where}.attributes[{j}]")),
                       tuple(str(c) for c in _list(_map(a, where).get("choices"), where)),
                       bool(a.get("required", False)), a.get("default"))
             for j, a in enumerate(_list(d.get("attributes"), f"{where}.attributes"))]
    return Product(str(_req(d, "sku", where)), str(_req(d, "name", where)),
                   str(_req(d, "family", where)), str(d.get("unit", "each")),
                   _amounts(d.get("list"), f"{where}.list"),
                   _amounts(d.get("cost"), f"{where}.cost"), tuple(comps), tuple(opts),
                   tuple(attrs), bool(d.get("active", True)))


def _check_product(p: Product, products: Mapping[str, Product], where: str) -> None:
    for j, c in enumerate(p.components):
        if c.sku not in products:
            raise CatalogError(f"{where}.components[{j}]: unknown SKU {c.sku!r}")
        if c.quantity <= 0:
            raise CatalogError(f"{where}.components[{j}]: quantity must be at least 1")
    for j, o in enumerate(p.options):
        if o.sku not in products:
            raise CatalogError(f"{where}.options[{j}]: unknown SKU {o.sku!r}")
        if not 0 <= o.min_qty <= o.max_qty or o.max_qty < 1:
            raise CatalogError(f"{where}.options[{j}]: need 0 ≤ min_qty ≤ max_qty, max ≥ 1")
    for cur in p.list_prices:
        if cur not in p.costs:
            raise CatalogError(f"{where}: has a {cur} list price but no {cur} cost")
    for a in p.attributes:
        if not a.choices:
            raise CatalogError(f"{where}: attribute {a.name!r} has no choices")
        if a.default is not None and a.default not in a.choices:
            raise CatalogError(f"{where}: attribute {a.name!r} defaults to a value it "
                               f"doesn't offer")


def _rule(d: Any, where: str, products: Mapping[str, Product]) -> ProductRule:
    d = _map(d, where)
    kind = _req(d, "kind", where)
    if kind not in RULE_KINDS:
        raise CatalogError(f"{where}: kind must be one of {', '.join(RULE_KINDS)}")
    bundle = str(_req(d, "bundle", where))
    if bundle not in products:
        raise CatalogError(f"{where}: unknown bundle SKU {bundle!r}")
    conds = []
    for j, c in enumerate(_list(d.get("when"), f"{where}.when")):
        c = _map(c, f"{where}.when[{j}]")
        op = _req(c, "op", f"{where}.when[{j}]")
        if op not in CONDITION_OPS:
            raise CatalogError(f"{where}.when[{j}]: op must be one of {', '.join(CONDITION_OPS)}")
        subject = str(_req(c, "subject", f"{where}.when[{j}]"))
        if subject.split(":")[0] not in ("option", "attribute", "quantity"):
            raise CatalogError(f"{where}.when[{j}]: subject is option:SKU, attribute:NAME or "
                               f"quantity")
        conds.append(Condition(subject, op, c.get("value")))
    add = tuple((str(_req(a, "sku", f"{where}.add")),
                 _int(_map(a, f"{where}.add").get("quantity", 1), f"{where}.add.quantity"))
                for a in _list(d.get("add"), f"{where}.add"))
    allowed = d.get("options")
    return ProductRule(
        str(_req(d, "id", where)), kind, bundle, tuple(conds), str(_req(d, "message", where)),
        add, tuple(str(s) for s in _list(d.get("remove"), f"{where}.remove")),
        None if allowed is None else tuple(str(s) for s in _list(allowed, where)),
        d.get("attribute"), tuple(str(v) for v in _list(d.get("values"), where)))


def _schedule(i: int, d: Any, where: str) -> DiscountSchedule:
    d = _map(d, where)
    mode = _req(d, "mode", where)
    if mode not in ("range", "slab"):
        raise CatalogError(f"{where}: mode is range or slab")
    tiers = []
    for j, t in enumerate(_list(_req(d, "tiers", where), f"{where}.tiers")):
        t = _map(t, f"{where}.tiers[{j}]")
        lower = _int(_req(t, "from", f"{where}.tiers[{j}]"), f"{where}.tiers[{j}].from")
        upper = t.get("to")
        tiers.append(Tier(lower, None if upper is None else _int(upper, f"{where}.tiers[{j}].to"),
                          _pct(t.get("pct", 0), f"{where}.tiers[{j}].pct")))
    for a, b in itertools.pairwise(tiers):
        if a.upper is None or b.lower != a.upper + 1:
            raise CatalogError(f"{where}: tiers must follow each other without gaps")
    if not tiers or tiers[0].lower != 1:
        raise CatalogError(f"{where}: the first tier starts at 1")
    return DiscountSchedule(i, str(_req(d, "name", where)), mode, tuple(tiers),
                            tuple(d.get("skus") or ()), tuple(d.get("families") or ()))


def _book(i: int, d: Any, where: str, account_id: Callable[[str], int | None],
          products: Mapping[str, Product]) -> PriceBook:
    d = _map(d, where)
    kind = _req(d, "kind", where)
    currency = str(_req(d, "currency", where))
    account = channel = None
    if kind == "account":
        name = str(_req(d, "account", where))
        account = d.get("account_id") or account_id(name)  # stored documents carry the id
        if account is None:
            raise CatalogError(f"{where}: no account named {name!r}")
    elif kind == "channel":
        channel = _req(d, "channel", where)
        if channel not in CHANNELS:
            raise CatalogError(f"{where}: channel must be one of {', '.join(CHANNELS)}")
    else:
        raise CatalogError(f"{where}: kind is account or channel")
    entries: dict[str, int] = {}
    for sku, amount in _map(_req(d, "entries", where), f"{where}.entries").items():
        if sku not in products:
            raise CatalogError(f"{where}.entries: unknown SKU {sku!r}")
        entries[str(sku)] = _amounts({currency: amount}, f"{where}.entries")[currency]
    start, end = _date(d.get("valid_from"), where), _date(d.get("valid_to"), where)
    if start and end and end < start:
        raise CatalogError(f"{where}: valid_to is before valid_from")
    return PriceBook(i, str(_req(d, "name", where)), kind, currency, entries, account, channel,
                     start, end, bool(d.get("net", False)))


def parse_catalog(doc: Any, account_id: Callable[[str], int | None]) -> CatalogSpec:
    """Check and build everything; ``account_id`` resolves account names of price books."""
    doc = _map(doc, "catalog")
    unknown = set(doc) - set(SECTIONS)
    if unknown:
        raise CatalogError(f"catalog: unknown section(s) {', '.join(sorted(unknown))}")
    products: dict[str, Product] = {}
    for i, d in enumerate(_list(doc.get("products"), "products")):
        p = _product(d, f"products[{i}]")
        if p.sku in products:
            raise CatalogError(f"products[{i}]: SKU {p.sku!r} appears twice")
        products[p.sku] = p
    for i, p in enumerate(products.values()):
        _check_product(p, products, f"products[{i}] ({p.sku})")
    rules = [_rule(d, f"rules[{i}]", products) for i, d in enumerate(_list(doc.get("rules"),
                                                                         "rules"))]
    if len({r.id for r in rules}) != len(rules):
        raise CatalogError("rules: rule ids must be unique")
    schedules = [_schedule(i + 1, d, f"schedules[{i}]")
                 for i, d in enumerate(_list(doc.get("schedules"), "schedules"))]
    books = [_book(i + 1, d, f"price_books[{i}]", account_id, products)
             for i, d in enumerate(_list(doc.get("price_books"), "price_books"))]
    if len({b.name for b in books}) != len(books):
        raise CatalogError("price_books: names must be unique")
    partners = _map(doc.get("partners") or {}, "partners")
    discounts = {(str(_req(p, "channel", "partners.discounts")),
                  str(_req(p, "tier", "partners.discounts"))):
                 _pct(_map(p, "partners.discounts").get("pct"), "partners.discounts")
                 for p in _list(partners.get("discounts"), "partners.discounts")}
    bands = {str(k): _pct(v, f"partners.bands.{k}")
             for k, v in _map(partners.get("bands") or {}, "partners.bands").items()}
    rounding = {str(cur): Rounding(_int(_map(r, f"rounding.{cur}").get("increment", 1),
                                        f"rounding.{cur}.increment"),
                                   str(r.get("mode", "half_up")))
                for cur, r in _map(doc.get("rounding") or {}, "rounding").items()}
    taxes = {str(region): [TaxRate(str(_req(t, "name", f"taxes.{region}")),
                                   _pct(_map(t, f"taxes.{region}").get("pct", 0),
                                        f"taxes.{region}"))
                           for t in _list(lines, f"taxes.{region}")]
             for region, lines in _map(doc.get("taxes") or {}, "taxes").items()}
    return CatalogSpec(Catalog(products, rules),
                       PriceRules(books, schedules, discounts, bands, rounding), taxes)
