"""The catalog: save each change as a new version (YAML, or a CSV import into the active
version), read the active one (parsed once: ``store.catalogs``), export CSV."""

from __future__ import annotations

import csv
import io
import itertools
import json
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cpq.catalog import CatalogError
from cpq.loader import CatalogSpec, parse_catalog
from cpq.money import MoneyError, major, to_minor
from documents.csv_cells import read_cell, text_cell
from store import audit
from store.audit import entity
from store.catalogs import account_resolver, load_spec
from store.commerce import CatalogVersion
from store.models import User
from store.who import Who
from web.errors import Invalid, NotFound

PRODUCT_COLUMNS = ("sku", "name", "family", "unit", "currency", "list_price", "cost")
BOOK_COLUMNS = ("sku", "price")
MAX_CSV_ROWS = 50_000
NO_CATALOG = "no catalog is loaded yet: an admin must load one first"
def _load_yaml(source: str) -> Any:
    try:
        return yaml.safe_load(source)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise Invalid(f"the catalog is not valid YAML{where}: {getattr(e, 'problem', e)}",
                      field="source") from None


def save_catalog(session: Session, source: str, actor: User | None, note: str = "",
                 document: dict[str, Any] | None = None,
                 process: str = "cli:catalog") -> CatalogVersion:
    """Check the whole document and store it as the next version (caller's transaction).
    Without a person (the CLI, the demo loader) the audit row names ``process``."""
    doc = document if document is not None else _load_yaml(source)
    try:
        spec = parse_catalog(doc, account_resolver(session))
    except CatalogError as e:
        raise Invalid(f"catalog: {e}", field="source") from None
    stored: dict[str, Any] = json.loads(json.dumps(doc, default=str))  # dates → ISO text
    for book, parsed in zip(stored.get("price_books") or [], spec.prices.books, strict=True):
        if parsed.account_id is not None:
            book["account_id"] = parsed.account_id
    version = (session.scalar(select(func.max(CatalogVersion.version))) or 0) + 1
    row = CatalogVersion(version=version, source=source, document=stored, note=note[:200],
                         created_by_id=actor.id if actor else None)
    session.add(row)
    session.flush()
    audit.append(session, event_key=f"catalog-v{version}",
                 actor=Who.user(actor) if actor else Who.system(process),
                 action="catalog.saved", entity=entity("catalog", version),
                 data={"version": version, "note": note[:200],
                       "products": len(spec.catalog.products),
                       "rules": len(spec.catalog.rules),
                       "price_books": [b.name for b in spec.prices.books]})
    return row


def active_version(session: Session) -> CatalogVersion:
    row = session.scalar(select(CatalogVersion).order_by(CatalogVersion.version.desc()).limit(1))
    if row is None:
        raise Invalid(NO_CATALOG, field="catalog")
    return row


def spec_of(session: Session, version: int | None = None) -> tuple[int, CatalogSpec]:
    """A catalog version's parsed spec (the active one if ``version`` is None)."""
    loaded = load_spec(session, version)
    if loaded is None:
        if version is None:
            raise Invalid(NO_CATALOG, field="catalog")
        raise NotFound(f"no catalog version {version}")
    return loaded


# --- CSV --------------------------------------------------------------------------------

MAX_UPLOAD = 20 * 1024 * 1024


def upload_text(data: bytes, field: str) -> str:
    """An uploaded catalog or CSV as text: UTF-8 (a byte-order mark is fine), bounded."""
    if len(data) > MAX_UPLOAD:
        raise Invalid(f"the upload is over {MAX_UPLOAD // (1024 * 1024)} MB", field=field)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("the upload is not UTF-8 text (save it as UTF-8, e.g. CSV UTF-8)",
                      field=field) from None


def _number(amount: object, currency: str) -> str:
    """A price as a plain decimal ("1200.00"): a number to a spreadsheet, never a formula."""
    return "" if amount in (None, "") else major(to_minor(str(amount), currency), currency, "")


def products_csv(row: CatalogVersion) -> str:
    """Text cells guarded against formulas (documents.csv_cells), prices plain decimals."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(PRODUCT_COLUMNS)
    for p in row.document.get("products") or []:
        for cur, price in sorted((p.get("list") or {}).items()):
            w.writerow([*(text_cell(str(v)) for v in (p["sku"], p["name"], p["family"],
                                                      p.get("unit", "each"), cur)),
                        _number(price, cur), _number((p.get("cost") or {}).get(cur), cur)])
    return out.getvalue()


def price_book_csv(row: CatalogVersion, name: str) -> str:
    book = _book(row.document, name)
    cur = book["currency"]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(BOOK_COLUMNS)
    for sku, price in sorted((book.get("entries") or {}).items()):
        w.writerow([text_cell(sku), _number(price, cur)])
    return out.getvalue()


def _book(doc: dict[str, Any], name: str) -> dict[str, Any]:
    for b in doc.get("price_books") or []:
        if b.get("name") == name:
            return dict(b)
    raise NotFound(f"no price book named {name!r}")


def _rows(data: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The CSV's rows, each cell as written before :func:`products_csv` guarded it."""
    reader = csv.DictReader(io.StringIO(data.lstrip("\ufeff")), restval="")
    try:
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise Invalid(f"the CSV needs the columns {', '.join(columns)} (missing: "
                          f"{', '.join(missing)})", field="file")
        rows = [{c: read_cell(r[c]) for c in columns}
                for r in itertools.islice(reader, MAX_CSV_ROWS + 1)]
    except csv.Error as e:
        raise Invalid(f"the CSV can't be read at line {reader.line_num}: {e}",
                      field="file") from None
    if not rows:
        raise Invalid("the CSV has no rows", field="file")
    if len(rows) > MAX_CSV_ROWS:
        raise Invalid(f"the CSV has over {MAX_CSV_ROWS} rows", field="file")
    return rows


def _amount(value: str, currency: str, where: str) -> str:
    try:
        minor = to_minor(value, currency)
    except MoneyError as e:
        raise Invalid(f"{where}: {e}", field="file") from None
    if minor < 0:
        raise Invalid(f"{where}: a price can't be negative", field="file")
    return major(minor, currency, "")


def import_products(session: Session, data: str, actor: User) -> CatalogVersion:
    """Create or update products (name, family, unit, price and cost per currency) from
    CSV; options, components and rules stay as they are. One new version, or nothing."""
    active = active_version(session)
    doc = json.loads(json.dumps(active.document))
    products = {p["sku"]: p for p in doc.setdefault("products", [])}
    for n, r in enumerate(_rows(data, PRODUCT_COLUMNS), start=2):
        sku, cur = r["sku"].strip(), r["currency"].strip().upper()
        if not sku or not r["name"].strip() or not r["family"].strip():
            raise Invalid(f"row {n}: sku, name and family are required", field="file")
        p = products.get(sku)
        if p is None:
            p = products[sku] = {"sku": sku}
            doc["products"].append(p)
        p.update(name=r["name"].strip(), family=r["family"].strip(),
                 unit=r["unit"].strip() or "each")
        p.setdefault("list", {})[cur] = _amount(r["list_price"], cur, f"row {n} list_price")
        p.setdefault("cost", {})[cur] = _amount(r["cost"], cur, f"row {n} cost")
    return save_catalog(session, yaml.safe_dump(doc, sort_keys=False), actor,
                        note="products imported from CSV", document=doc)


def import_price_book(session: Session, name: str, data: str, actor: User) -> CatalogVersion:
    """Replace a price book's entries with the CSV's. One new version, or nothing."""
    active = active_version(session)
    doc = json.loads(json.dumps(active.document))
    book = next((b for b in doc.get("price_books") or [] if b.get("name") == name), None)
    if book is None:
        raise NotFound(f"no price book named {name!r}")
    entries: dict[str, str] = {}
    for n, r in enumerate(_rows(data, BOOK_COLUMNS), start=2):
        sku = r["sku"].strip()
        if sku in entries:
            raise Invalid(f"row {n}: {sku} appears twice", field="file")
        entries[sku] = _amount(r["price"], book["currency"], f"row {n} price")
    book["entries"] = entries
    return save_catalog(session, yaml.safe_dump(doc, sort_keys=False), actor,
                        note=f"price book {name!r} imported from CSV", document=doc)
