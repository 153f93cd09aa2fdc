"""The JSON API for configure-price-quote: the catalog (YAML in, CSV in and out), a quote's
configured items and pricing context, and previews of a configuration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from store.db import write_lock
from store.models import Quote, User
from store.quote_items import selection_json
from web.auth import CurrentUser, require
from web.deps import SessionDep
from web.downloads import CsvResponse, text_body
from web.errors import API_ERRORS, JSON_ERRORS
from web.params import BookName, PathId, Percent, Position
from web.services import catalog as catalog_service
from web.services import configurator
from web.services.configurator import parse_pct, parse_selection
from web.services.costs import COST_READERS, shown
from web.services.quotes import visible_quote

router = APIRouter(prefix="/api/v1", tags=["cpq"], responses=API_ERRORS)
CATALOG_ADMINS = ("admin", "deal_desk")
# Costs and every account's contracted prices: not for reps.
CATALOG_READERS = COST_READERS


class CatalogOut(BaseModel):
    version: int
    note: str
    products: int
    rules: int
    price_books: list[str]


class ItemIn(BaseModel):
    selection: dict[str, Any] = Field(description="{sku, quantity, attributes, options: [...]}")
    manual_discount_pct: Percent = "0"


class PricingIn(BaseModel):
    channel: str = Field("direct", max_length=40)
    partner_tier: str | None = Field(None, max_length=40)
    header_discount_pct: Percent = "0"
    price_book: str | None = Field(None, max_length=200)
    latest_catalog: bool = False


async def _text(request: Request) -> str:
    body = await request.body()
    return catalog_service.upload_text(body, "body")


BodyText = Annotated[str, Depends(_text)]
CATALOG_BODY = {"requestBody": {
    "required": True, "description": "the whole catalog document, as YAML or JSON",
    "content": {media: {"schema": {"type": "object"}}
                for media in ("application/yaml", "application/json")}}}


def _catalog_out(session: SessionDep) -> CatalogOut:
    row = catalog_service.active_version(session)
    _, spec = catalog_service.spec_of(session, row.version)
    return CatalogOut(version=row.version, note=row.note, products=len(spec.catalog.products),
                      rules=len(spec.catalog.rules),
                      price_books=[b.name for b in spec.prices.books])


@router.get("/catalog", response_model=CatalogOut)
def get_catalog(user: CurrentUser, session: SessionDep) -> CatalogOut:
    return _catalog_out(session)


@router.post("/catalog", response_model=CatalogOut, status_code=201,
             dependencies=[require(*CATALOG_ADMINS)], openapi_extra=CATALOG_BODY)
def load_catalog(source: BodyText, user: CurrentUser, session: SessionDep) -> CatalogOut:
    """The whole catalog document as YAML (or JSON): a new version."""
    write_lock(session)
    catalog_service.save_catalog(session, source, user, note="loaded through the API")
    session.commit()
    return _catalog_out(session)


@router.get("/catalog/products.csv", response_class=CsvResponse, responses=JSON_ERRORS,
            dependencies=[require(*CATALOG_READERS)])
def export_products(user: CurrentUser, session: SessionDep) -> CsvResponse:
    return CsvResponse(catalog_service.products_csv(catalog_service.active_version(session)))


@router.put("/catalog/products.csv", response_model=CatalogOut,
            dependencies=[require(*CATALOG_ADMINS)], openapi_extra=text_body(
                "text/csv", description="columns: " + ", ".join(
                    catalog_service.PRODUCT_COLUMNS)))
def import_products(data: BodyText, user: CurrentUser, session: SessionDep) -> CatalogOut:
    write_lock(session)
    catalog_service.import_products(session, data, user)
    session.commit()
    return _catalog_out(session)


@router.get("/price-books/{name}.csv", response_class=CsvResponse, responses=JSON_ERRORS,
            dependencies=[require(*CATALOG_READERS)])
def export_book(name: BookName, user: CurrentUser, session: SessionDep) -> CsvResponse:
    return CsvResponse(catalog_service.price_book_csv(catalog_service.active_version(session),
                                                      name))


@router.put("/price-books/{name}.csv", response_model=CatalogOut,
            dependencies=[require(*CATALOG_ADMINS)], openapi_extra=text_body(
                "text/csv", description="columns: " + ", ".join(
                    catalog_service.BOOK_COLUMNS)))
def import_book(name: BookName, data: BodyText, user: CurrentUser,
                session: SessionDep) -> CatalogOut:
    write_lock(session)
    catalog_service.import_price_book(session, name, data, user)
    session.commit()
    return _catalog_out(session)


def _lines(session: SessionDep, quote: Quote, user: User) -> dict[str, Any]:
    """The quote's pricing and items; costs and margins only for those who see costs."""
    items = configurator.items_of(session, quote)
    lines: dict[str, Any] = shown(user, {
        "quote_id": quote.id, "version": quote.version, "currency": quote.currency,
        "catalog_version": quote.catalog_version, "channel": quote.channel,
        "partner_tier": quote.partner_tier, "header_discount_pct": quote.header_discount_pct,
        "price_book": quote.price_book, "list_total": quote.list_amount,
        "net_total": quote.net_amount, "cost_total": quote.cost_amount,
        "discount_pct": quote.discount_pct, "margin_pct": quote.margin_pct,
        "items": [{"position": it.position, "selection": it.selection,
                   "manual_discount_pct": it.manual_discount_pct, "list_total": it.list_total,
                   "net_total": it.net_total, **it.priced} for it in items],
    })
    return lines


@router.get("/quotes/{quote_id}/items")
def list_items(quote_id: PathId, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """Items with every priced line's waterfall, the bill of materials and rule alerts."""
    return _lines(session, visible_quote(session, quote_id, user), user)


@router.post("/quotes/{quote_id}/configure")
def preview(quote_id: PathId, body: ItemIn, user: CurrentUser,
            session: SessionDep) -> dict[str, Any]:
    """Check a configuration without saving it: rule findings, and prices when valid."""
    quote = visible_quote(session, quote_id, user)
    p = configurator.preview(session, quote, parse_selection(body.selection),
                             parse_pct(body.manual_discount_pct, "manual_discount_pct"))
    return {
        "valid": p.configured.valid,
        "selection": selection_json(p.configured.selection),
        "violations": [f.__dict__ for f in p.configured.violations],
        "alerts": [f.__dict__ for f in p.configured.alerts],
        "applied": [f.__dict__ for f in p.configured.applied],
        "net_total": p.priced.net_total if p.priced else None,
        "bom": [r.__dict__ for r in p.bom],
    }


@router.post("/quotes/{quote_id}/items", status_code=201)
def add_items(quote_id: PathId,
              body: ItemIn | Annotated[list[ItemIn], Field(max_length=configurator.MAX_ITEMS)],
              user: CurrentUser,
              session: SessionDep) -> dict[str, Any]:
    """One item, or a list of them (an RFQ's line list) in one transaction."""
    bodies = body if isinstance(body, list) else [body]
    parsed = [(parse_selection(b.selection, f"items[{i}].selection"),
               parse_pct(b.manual_discount_pct, f"items[{i}].manual_discount_pct"))
              for i, b in enumerate(bodies)]
    write_lock(session)
    quote = visible_quote(session, quote_id, user)
    configurator.add_items(session, quote, user, parsed)
    session.commit()
    return _lines(session, quote, user)


@router.put("/quotes/{quote_id}/items/{position}")
def change_item(quote_id: PathId, position: Position, body: ItemIn, user: CurrentUser,
                session: SessionDep) -> dict[str, Any]:
    write_lock(session)
    quote = visible_quote(session, quote_id, user)
    configurator.change_item(session, quote, user, position, parse_selection(body.selection),
                             parse_pct(body.manual_discount_pct, "manual_discount_pct"))
    session.commit()
    return _lines(session, quote, user)


@router.delete("/quotes/{quote_id}/items/{position}")
def remove_item(quote_id: PathId, position: Position, user: CurrentUser,
                session: SessionDep) -> dict[str, Any]:
    write_lock(session)
    quote = visible_quote(session, quote_id, user)
    configurator.remove_item(session, quote, user, position)
    session.commit()
    return _lines(session, quote, user)


@router.put("/quotes/{quote_id}/pricing")
def set_pricing(quote_id: PathId, body: PricingIn, user: CurrentUser,
                session: SessionDep) -> dict[str, Any]:
    write_lock(session)
    quote = visible_quote(session, quote_id, user)
    configurator.set_pricing(
        session, quote, user, channel=body.channel, partner_tier=body.partner_tier,
        header_discount=parse_pct(body.header_discount_pct, "header_discount_pct"),
        price_book=body.price_book, latest_catalog=body.latest_catalog)
    session.commit()
    return _lines(session, quote, user)
