"""The quote builder (htmx): find a product, configure it with the rules answering inline,
watch each line's price waterfall and the quote's totals follow.

Configuration form fields: ``sku``, ``qty`` and ``discount`` for the product, ``o:PATH`` for
an option's quantity (``PATH`` is the SKUs from the product down, ``/``-separated: ``WS-BODY``,
``WS-BODY/CPU-16``), ``a:PATH:NAME`` for an attribute, ``seen:PATH`` for every bundle the form
showed (a bundle not seen before gets its default options), ``item`` when editing a line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from cpq.catalog import Catalog, CatalogError, Product, Selection, allowed_options, with_defaults
from cpq.pricing import CHANNELS, PARTNER_CHANNELS
from store.db import write_lock
from store.models import Quote, User
from web.auth import CurrentUser
from web.deps import FormDep, SessionDep
from web.errors import Forbidden, Invalid, NotFound
from web.params import MAX_ID, MAX_QUANTITY, PathId, Position, form_int
from web.render import render
from web.services import configurator
from web.services.catalog import spec_of
from web.services.configurator import parse_pct
from web.services.quotes import visible_quote

router = APIRouter(include_in_schema=False)
MAX_RESULTS = 30


def _quote(session: SessionDep, quote_id: int, user: User, *, edit: bool = False) -> Quote:
    quote = visible_quote(session, quote_id, user)
    if edit and quote.owner_id != user.id:
        raise Forbidden(f"only the quote's owner ({quote.owner.name}) can change it")
    return quote


def _catalog(session: SessionDep, quote: Quote) -> Catalog:
    return spec_of(session, quote.catalog_version)[1].catalog


def sellable(catalog: Catalog, currency: str, q: str = "") -> list[Product]:
    """Products a rep can add: priced in the currency, not only a component or a bundled
    part of something else."""
    parts = {c.sku for p in catalog.products.values() for c in p.components}
    parts |= {o.sku for p in catalog.products.values() for o in p.options if o.bundled}
    needle = q.strip().lower()
    return [p for p in catalog.products.values()
            if p.active and currency in p.list_prices and p.sku not in parts
            and (not needle or needle in p.sku.lower() or needle in p.name.lower()
                 or needle in p.family.lower())][:MAX_RESULTS]


def _context(session: SessionDep, quote: Quote, user: User) -> dict[str, Any]:
    version, spec = spec_of(session, quote.catalog_version)
    latest = spec_of(session)[0]
    items = configurator.items_of(session, quote)
    return {"quote": quote, "items": items, "catalog": spec.catalog, "prices": spec.prices,
            "products": sellable(spec.catalog, quote.currency), "q": "", "panel": None,
            "catalog_version": version, "latest_version": latest,
            "may_edit": quote.owner_id == user.id and quote.status not in (
                "pending_approval", "won"),
            "books": [b for b in spec.prices.books if b.currency == quote.currency
                      and (b.kind == "channel" or b.account_id == quote.account_id)],
            "tiers": _tiers(spec.prices.partner_discounts), "partner_channels": PARTNER_CHANNELS,
            "channels": CHANNELS, "pricing_errors": {},
            "pricing": {"channel": quote.channel, "partner_tier": quote.partner_tier or "",
                        "header_discount": quote.header_discount_pct,
                        "price_book": quote.price_book or ""},
            "conflicts": sorted({s for it in items for s in it.priced.get("conflicts", [])}),
            "alerts": [a for it in items for a in it.priced.get("alerts", [])]}


def _tiers(discounts: Mapping[tuple[str, str], Decimal]) -> dict[str, list[tuple[str, Decimal]]]:
    """Each partner channel's tiers and their discounts, largest discount first."""
    by_channel: dict[str, list[tuple[str, Decimal]]] = {}
    for (channel, tier), pct in sorted(discounts.items(), key=lambda kv: -kv[1]):
        by_channel.setdefault(channel, []).append((tier, pct))
    return by_channel


@router.get("/quotes/{quote_id}/build")
def builder_page(request: Request, quote_id: PathId, user: CurrentUser,
                       session: SessionDep) -> Response:
    quote = _quote(session, quote_id, user)
    return render(request, "builder.html", _context(session, quote, user))


@router.get("/quotes/{quote_id}/build/products")
def search(request: Request, quote_id: PathId, user: CurrentUser, session: SessionDep,
           q: Annotated[str, Query(max_length=200)] = "") -> Response:
    quote = _quote(session, quote_id, user)
    return render(request, "builder.html", {
        "quote": quote, "products": sellable(_catalog(session, quote), quote.currency, q),
        "q": q}, block="products")


@dataclass(frozen=True)
class Reading:
    """The configuration form as typed: the selection it describes (a number that isn't one
    counts as its default), the line discount, and what is wrong, by field name."""

    sel: Selection
    discount: Decimal
    raw: dict[str, str]
    errors: dict[str, str]


def _whole(text: str, low: int, high: int) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if low <= value <= high else None


def _read(form: FormData, catalog: Catalog) -> Reading:
    sku = str(form.get("sku", ""))
    raw = {k: str(v).strip() for k, v in form.multi_items()
           if k in ("qty", "discount") or k.startswith("o:")}
    errors: dict[str, str] = {}
    qty = _whole(raw.get("qty", "1"), 1, MAX_QUANTITY)
    if qty is None:
        errors["qty"] = f"Enter a whole number from 1 to {MAX_QUANTITY:,}."
    try:
        discount = parse_pct(raw.get("discount", "0"), "discount")
    except Invalid:
        discount = Decimal(0)
        errors["discount"] = "Enter a percentage from 0 to 100, such as 12.5."
    chosen: dict[str, int] = {}
    for key, value in raw.items():
        if key.startswith("o:") and value:
            n = _whole(value, 0, MAX_QUANTITY)
            if n is None:
                errors[key] = "Enter a whole number of 0 or more."
            else:
                chosen[key[2:]] = n
    seen = {str(v) for k, v in form.multi_items() if k == "seen"}

    def build(product: Product, path: str, quantity: int) -> Selection:
        attrs = {k.split(":", 2)[2]: str(v) for k, v in form.multi_items()
                 if k.startswith(f"a:{path}:") and str(v)}
        options = []
        for opt in product.options:
            p = f"{path}/{opt.sku}" if path else opt.sku
            if chosen.get(p, 0) > 0:
                options.append(build(catalog.product(opt.sku), p, chosen[p]))
        sel = Selection(product.sku, quantity, attrs, tuple(options))
        return sel if path in seen else with_defaults(product, sel)

    try:
        sel = build(catalog.product(sku), "", qty or 1)
    except CatalogError as e:
        raise Invalid(str(e), field="sku") from None
    return Reading(sel, discount, raw, errors)


def _panel(session: SessionDep, quote: Quote, catalog: Catalog, sel: Selection,
           discount: Decimal, item: int | None, raw: dict[str, str] | None = None,
           errors: dict[str, str] | None = None) -> dict[str, Any]:
    p = configurator.preview(session, quote, sel, discount, defaults=False)
    allowed: dict[str, set[str]] = {}

    def walk(s: Selection, path: str) -> None:
        allowed[path] = allowed_options(catalog, s)
        for o in s.options:
            walk(o, f"{path}/{o.sku}" if path else o.sku)
    walk(p.configured.selection, "")
    errors = errors or {}
    # A field in error shows what was typed; the others what the rules made of it.
    typed = {k: v for k, v in (raw or {}).items() if k in errors}
    return {"preview": p, "sel": p.configured.selection, "allowed": allowed,
            "discount": discount, "item": item, "raw": typed, "errors": errors}


@router.get("/quotes/{quote_id}/build/configure")
def configure_new(request: Request, quote_id: PathId, user: CurrentUser,
                  session: SessionDep, sku: Annotated[str, Query(max_length=200)] = "",
                  item: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    quote = _quote(session, quote_id, user, edit=True)
    catalog = _catalog(session, quote)
    if item is not None:
        row = next((it for it in configurator.items_of(session, quote) if it.position == item),
                   None)
        if row is None:
            raise NotFound(f"no item {item}")
        sel, discount = configurator.parse_selection(row.selection), Decimal(
            row.manual_discount_pct)
    else:
        try:
            sel = with_defaults(catalog.product(sku), Selection(sku))
        except CatalogError as e:
            raise Invalid(str(e), field="sku") from None
        sel = _defaults_deep(catalog, sel)
        discount = Decimal(0)
    return render(request, "builder.html", {"quote": quote, "catalog": catalog,
                                            "panel": _panel(session, quote, catalog, sel,
                                                            discount, item)}, block="panel")


def _defaults_deep(catalog: Catalog, sel: Selection) -> Selection:
    sel = with_defaults(catalog.product(sel.sku), sel)
    return Selection(sel.sku, sel.quantity, sel.attributes,
                     tuple(_defaults_deep(catalog, o) for o in sel.options))


@router.post("/quotes/{quote_id}/build/configure")
def configure_change(request: Request, quote_id: PathId, user: CurrentUser, session: SessionDep,
                     form: FormDep) -> Response:
    quote = _quote(session, quote_id, user, edit=True)
    catalog = _catalog(session, quote)
    reading = _read(form, catalog)
    return _panel_response(request, session, quote, catalog, reading, _item_no(form))


def _item_no(form: FormData) -> int | None:
    return form_int(form.get("item"), "item", 1, MAX_ID)


def _panel_response(request: Request, session: SessionDep, quote: Quote, catalog: Catalog,
                    reading: Reading, item: int | None, status_code: int = 200) -> Response:
    """The configuration panel, with each field's problem next to it."""
    panel = _panel(session, quote, catalog, reading.sel, reading.discount, item, reading.raw,
                   reading.errors)
    response = render(request, "builder.html", {"quote": quote, "catalog": catalog,
                                                "panel": panel}, block="panel",
                      status_code=status_code)
    if status_code != 200:  # the Add button aims at the lines: show the fields instead
        response.headers.update({"HX-Retarget": "#panel", "HX-Reswap": "innerHTML"})
    return response


@router.post("/quotes/{quote_id}/build/items")
def save_item(request: Request, quote_id: PathId, user: CurrentUser, session: SessionDep,
              form: FormDep) -> Response:
    write_lock(session)
    quote = _quote(session, quote_id, user, edit=True)
    catalog = _catalog(session, quote)
    reading = _read(form, catalog)
    if reading.errors:
        session.rollback()
        return _panel_response(request, session, quote, catalog, reading, _item_no(form), 422)
    sel, discount = reading.sel, reading.discount
    item = _item_no(form)
    if item is not None:
        configurator.change_item(session, quote, user, item, sel, discount)
        session.commit()
        return _workspace(request, session, quote, user)
    [added] = configurator.add_items(session, quote, user, [(sel, discount)], defaults=False)
    session.commit()
    if request.headers.get("HX-Target") != "lines-table":  # the first line: no table yet
        return _workspace(request, session, quote, user)
    # Only the new line and the totals: the cost stays flat however long the quote is.
    return render(request, "builder.html", {"quote": quote, "added": added}, block="added")


def _workspace(request: Request, session: SessionDep, quote: Quote, user: User) -> Response:
    return render(request, "builder.html", _context(session, quote, user), block="workspace")


@router.post("/quotes/{quote_id}/build/items/{position}/delete")
def delete_item(request: Request, quote_id: PathId, position: Position, user: CurrentUser,
                      session: SessionDep) -> Response:
    write_lock(session)
    quote = _quote(session, quote_id, user, edit=True)
    configurator.remove_item(session, quote, user, position)
    session.commit()
    return _workspace(request, session, quote, user)


PRICING_FIELDS = ("channel", "partner_tier", "header_discount", "price_book")


@router.post("/quotes/{quote_id}/build/pricing")
def set_pricing(request: Request, quote_id: PathId, user: CurrentUser, session: SessionDep,
                form: FormDep) -> Response:
    write_lock(session)
    quote = _quote(session, quote_id, user, edit=True)
    asked = {k: str(form.get(k) or "").strip() for k in PRICING_FIELDS}
    try:
        configurator.set_pricing(
            session, quote, user, channel=asked["channel"] or "direct",
            partner_tier=asked["partner_tier"] or None,
            header_discount=parse_pct(asked["header_discount"], "header_discount"),
            price_book=asked["price_book"] or None,
            latest_catalog=form.get("latest_catalog") == "1")
    except Invalid as e:
        session.rollback()  # nothing changed: show the form as typed, the problem at its field
        return _pricing_refused(request, session, quote, user, asked, e)
    session.commit()
    return _workspace(request, session, quote, user)


def _pricing_refused(request: Request, session: SessionDep, quote: Quote, user: User,
                     asked: dict[str, str], e: Invalid) -> Response:
    ctx = _context(session, quote, user)
    field = e.field if e.field in PRICING_FIELDS else "pricing"
    message = e.message
    offered = [tier for tier, _ in ctx["tiers"].get(asked["channel"], [])]
    if field == "partner_tier" and asked["partner_tier"] not in offered:
        # A new partner channel (or another partner channel, with tiers of its own).
        asked = {**asked, "partner_tier": ""}
        message = (f"Choose the partner's tier: {asked['channel']} prices depend on it. "
                   "The channel changes when you do.")
    elif field == "header_discount":
        message = "Enter a percentage from 0 to 100, such as 12.5."
    response = render(request, "builder.html", {
        **ctx, "pricing": asked, "pricing_errors": {field: message},
    }, block="pricing", status_code=422)
    response.headers.update({"HX-Retarget": "#pricing", "HX-Reswap": "outerHTML"})
    return response
