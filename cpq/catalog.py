"""The catalog and configuration: products, bundles with options, product rules, bills of
materials. Pure: no store, no I/O; the store loads a :class:`Catalog` and calls in.

A *bundle* is a product with options; an option is itself a product and may be a bundle
(nested bundles). *Components* are a product's bill of materials: parts that ship with it
and are not priced separately (a workstation's body, keyboard and mouse; the body's board and
drive). Options are priced; an option marked ``bundled`` is included in its bundle's price.

Product rules are data, evaluated against one bundle's configuration:

- ``selection`` rules add or remove options when their conditions hold (run first, until the
  configuration stops changing);
- ``filter`` rules limit the options or attribute values allowed when their conditions hold;
- ``validation`` rules block the configuration with their message when their conditions
  hold;
- ``alert`` rules warn with their message and block nothing.

Errors: :class:`CatalogError` for a reference the catalog doesn't know (an unknown SKU: the
caller's mistake, a 4xx). Rule violations are not exceptions: :func:`configure` returns them
so the builder can show every one at once; the service refuses to save a configuration that
has any (422 naming the rule).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

RuleKind = Literal["validation", "alert", "selection", "filter"]
RULE_KINDS: tuple[RuleKind, ...] = ("validation", "alert", "selection", "filter")
CONDITION_OPS = ("selected", "not_selected", "eq", "ne", "in", "gt", "gte", "lt", "lte")
_MAX_SELECTION_PASSES = 10
MAX_DEPTH = 6


class CatalogError(ValueError):
    """A SKU, option or attribute the catalog does not have."""


@dataclass(frozen=True)
class Component:
    sku: str
    quantity: int
    """Per one unit of the parent."""


@dataclass(frozen=True)
class Option:
    """A product that can be chosen inside a bundle."""

    sku: str
    required: bool = False
    min_qty: int = 0
    max_qty: int = 1
    default_qty: int = 0
    """Added with this quantity when the bundle is configured without it (required options
    default to ``max(1, min_qty)``)."""
    bundled: bool = False
    """Included in the bundle's price (priced at zero)."""


@dataclass(frozen=True)
class Attribute:
    """A configuration choice on a product, e.g. colour or region."""

    name: str
    choices: tuple[str, ...]
    required: bool = False
    default: str | None = None


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    family: str
    unit: str = "each"
    list_prices: Mapping[str, int] = field(default_factory=dict)
    """Currency code → list price per unit, minor units."""
    costs: Mapping[str, int] = field(default_factory=dict)
    """Currency code → cost per unit, minor units."""
    components: tuple[Component, ...] = ()
    options: tuple[Option, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    active: bool = True

    def option(self, sku: str) -> Option | None:
        return next((o for o in self.options if o.sku == sku), None)


@dataclass(frozen=True)
class Condition:
    """``subject`` is ``option:SKU`` (the option's quantity; ``selected`` / ``not_selected``
    or a comparison), ``attribute:NAME`` or ``quantity`` (the bundle's own)."""

    subject: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class ProductRule:
    id: str
    kind: RuleKind
    bundle: str
    """The bundle SKU whose configuration the rule reads and acts on."""
    conditions: tuple[Condition, ...]
    message: str
    add: tuple[tuple[str, int], ...] = ()
    """selection: options to add, with their quantity."""
    remove: tuple[str, ...] = ()
    """selection: options to remove."""
    allowed_options: tuple[str, ...] | None = None
    """filter: only these options may be chosen (None: options are not filtered)."""
    attribute: str | None = None
    allowed_values: tuple[str, ...] = ()
    """filter: the values ``attribute`` may take."""


@dataclass(frozen=True)
class Selection:
    """One configured product: what the rep chose (and what rules added)."""

    sku: str
    quantity: int = 1
    attributes: Mapping[str, str] = field(default_factory=dict)
    options: tuple[Selection, ...] = ()

    def option_qty(self, sku: str) -> int:
        return sum(o.quantity for o in self.options if o.sku == sku)


@dataclass(frozen=True)
class Finding:
    rule: str
    """A rule id, or a built-in check's name (``required-option``, ``option-quantity``…)."""
    message: str
    path: str
    """Where: SKUs from the top-level product down, e.g. ``WS-9 › WS-BODY``."""


@dataclass(frozen=True)
class Configured:
    selection: Selection
    violations: tuple[Finding, ...]
    alerts: tuple[Finding, ...]
    applied: tuple[Finding, ...]
    """Selection rules that changed the configuration."""

    @property
    def valid(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class BomRow:
    level: int
    sku: str
    name: str
    quantity: int


@dataclass
class Catalog:
    products: dict[str, Product]
    rules: list[ProductRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rules_by_bundle: dict[str, list[ProductRule]] = {}
        for r in self.rules:
            self._rules_by_bundle.setdefault(r.bundle, []).append(r)

    def product(self, sku: str) -> Product:
        p = self.products.get(sku)
        if p is None or not p.active:
            raise CatalogError(f"unknown SKU {sku!r}")
        return p

    def rules_for(self, sku: str, kind: RuleKind) -> Iterator[ProductRule]:
        return (r for r in self._rules_by_bundle.get(sku, ()) if r.kind == kind)


def holds(cond: Condition, sel: Selection) -> bool:
    kind, _, name = cond.subject.partition(":")
    actual: Any
    if kind == "option":
        actual = sel.option_qty(name)
        if cond.op == "selected":
            return bool(actual > 0)
        if cond.op == "not_selected":
            return bool(actual == 0)
    elif kind == "attribute":
        actual = sel.attributes.get(name)
    elif kind == "quantity":
        actual = sel.quantity
    else:
        raise CatalogError(f"unknown condition subject {cond.subject!r}")
    v = cond.value
    match cond.op:
        case "eq":
            return bool(actual == v)
        case "ne":
            return bool(actual != v)
        case "in":
            return actual in v
        case "gt" | "gte" | "lt" | "lte" if actual is None:
            return False
        case "gt":
            return bool(actual > v)
        case "gte":
            return bool(actual >= v)
        case "lt":
            return bool(actual < v)
        case "lte":
            return bool(actual <= v)
    raise CatalogError(f"operator {cond.op!r} does not apply to {cond.subject!r}")


def _matches(rule: ProductRule, sel: Selection) -> bool:
    return all(holds(c, sel) for c in rule.conditions)


def configure(catalog: Catalog, sel: Selection, *, defaults: bool = True) -> Configured:
    """Apply defaults (unless ``defaults`` is off: a configuration someone already edited,
    where a missing default option was removed on purpose) and selection rules, then check
    everything; never raises for a rule violation (see :class:`Configured`), only for an
    unknown SKU."""
    violations: list[Finding] = []
    alerts: list[Finding] = []
    applied: list[Finding] = []
    done = _configure(catalog, sel, sel.sku, 0, defaults, violations, alerts, applied)
    return Configured(done, tuple(violations), tuple(alerts), tuple(applied))


def _configure(catalog: Catalog, sel: Selection, path: str, depth: int, defaults: bool,
               violations: list[Finding], alerts: list[Finding],
               applied: list[Finding]) -> Selection:
    product = catalog.product(sel.sku)
    if depth > MAX_DEPTH:
        raise CatalogError(f"{path}: bundles nest deeper than {MAX_DEPTH} levels")
    if sel.quantity <= 0:
        violations.append(Finding("quantity", f"{sel.sku}: quantity must be at least 1", path))
    if defaults:
        sel = with_defaults(product, sel)
    sel = _run_selection_rules(catalog, sel, path, applied)
    _check_attributes(product, sel, path, violations)
    _check_options(catalog, product, sel, path, violations)
    for rule in catalog.rules_for(sel.sku, "validation"):
        if _matches(rule, sel):
            violations.append(Finding(rule.id, rule.message, path))
    for rule in catalog.rules_for(sel.sku, "alert"):
        if _matches(rule, sel):
            alerts.append(Finding(rule.id, rule.message, path))
    options = tuple(_configure(catalog, o, f"{path} › {o.sku}", depth + 1, defaults,
                               violations, alerts, applied) for o in sel.options)
    return replace(sel, options=options)


def with_defaults(product: Product, sel: Selection) -> Selection:
    """Default attribute values, and required and default options not chosen yet."""
    attrs = dict(sel.attributes)
    for a in product.attributes:
        if a.name not in attrs and a.default is not None:
            attrs[a.name] = a.default
    options = list(sel.options)
    chosen = {o.sku for o in options}
    for opt in product.options:
        qty = max(1, opt.min_qty) if opt.required else opt.default_qty
        if opt.sku not in chosen and qty > 0:
            options.append(Selection(opt.sku, qty))
    return replace(sel, attributes=attrs, options=tuple(options))


def _run_selection_rules(catalog: Catalog, sel: Selection, path: str,
                         applied: list[Finding]) -> Selection:
    for _ in range(_MAX_SELECTION_PASSES):
        changed = False
        for rule in catalog.rules_for(sel.sku, "selection"):
            if not _matches(rule, sel):
                continue
            options = [o for o in sel.options if o.sku not in rule.remove]
            for sku, qty in rule.add:
                if not any(o.sku == sku for o in options):
                    options.append(Selection(sku, qty))
            if len(options) != len(sel.options) or any(
                    a is not b for a, b in zip(options, sel.options, strict=False)):
                sel = replace(sel, options=tuple(options))
                applied.append(Finding(rule.id, rule.message, path))
                changed = True
        if not changed:
            return sel
    raise CatalogError(f"{path}: selection rules keep changing the configuration "
                       f"(they contradict each other)")


def _check_attributes(product: Product, sel: Selection, path: str,
                      violations: list[Finding]) -> None:
    known = {a.name: a for a in product.attributes}
    for name in sel.attributes:
        if name not in known:
            raise CatalogError(f"{path}: {product.sku} has no attribute {name!r}")
    for a in product.attributes:
        value = sel.attributes.get(a.name)
        if value is None:
            if a.required:
                violations.append(Finding("required-attribute",
                                          f"choose a {a.name} for {product.name}", path))
            continue
        if value not in a.choices:
            raise CatalogError(f"{path}: {value!r} is not a {a.name} of {product.sku} "
                               f"(choose one of {', '.join(a.choices)})")


def _check_options(catalog: Catalog, product: Product, sel: Selection, path: str,
                   violations: list[Finding]) -> None:
    filters = [r for r in catalog.rules_for(sel.sku, "filter") if _matches(r, sel)]
    for rule in filters:
        if rule.attribute and sel.attributes.get(rule.attribute) not in (
                None, *rule.allowed_values):
            violations.append(Finding(rule.id, rule.message, path))
    seen: set[str] = set()
    for o in sel.options:
        opt = product.option(o.sku)
        if opt is None:
            catalog.product(o.sku)  # an unknown SKU is a CatalogError, not a violation
            raise CatalogError(f"{path}: {o.sku} is not an option of {product.sku}")
        if o.sku in seen:
            raise CatalogError(f"{path}: option {o.sku} is chosen twice")
        seen.add(o.sku)
        if not max(opt.min_qty, 1) <= o.quantity <= opt.max_qty:
            violations.append(Finding(
                "option-quantity", f"{o.sku}: quantity {o.quantity} is outside "
                f"{max(opt.min_qty, 1)}–{opt.max_qty}", path))
        for rule in filters:
            if rule.allowed_options is not None and o.sku not in rule.allowed_options:
                violations.append(Finding(rule.id, f"{rule.message} ({o.sku})", path))
    for opt in product.options:
        if opt.required and opt.sku not in seen:
            violations.append(Finding("required-option",
                                      f"{product.sku} needs option {opt.sku}", path))


def allowed_options(catalog: Catalog, sel: Selection) -> set[str]:
    """The options a builder may offer for this bundle right now (filter rules applied)."""
    product = catalog.product(sel.sku)
    allowed = {o.sku for o in product.options}
    for rule in catalog.rules_for(sel.sku, "filter"):
        if rule.allowed_options is not None and _matches(rule, sel):
            allowed &= set(rule.allowed_options)
    return allowed


def bill_of_materials(catalog: Catalog, sel: Selection, multiplier: int = 1,
                      level: int = 0) -> list[BomRow]:
    """The configured product, its options and every component, nested, with quantities
    for the whole line (a parent's quantity multiplies its children's)."""
    product = catalog.product(sel.sku)
    qty = sel.quantity * multiplier
    rows = [BomRow(level, product.sku, product.name, qty)]
    for o in sel.options:
        rows += bill_of_materials(catalog, o, qty, level + 1)
    rows += _components(catalog, product, qty, level + 1)
    return rows


def _components(catalog: Catalog, product: Product, qty: int, level: int) -> list[BomRow]:
    if level > MAX_DEPTH + 2:
        raise CatalogError(f"{product.sku}: components nest too deep (a cycle?)")
    rows = []
    for c in product.components:
        part = catalog.product(c.sku)
        rows.append(BomRow(level, part.sku, part.name, c.quantity * qty))
        rows += _components(catalog, part, c.quantity * qty, level + 1)
    return rows
