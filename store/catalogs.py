"""Catalog versions as parsed specs, cached per process and store: a version never changes
once saved, so it is parsed once (the web tier, and every invoice issued, read it)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cpq.loader import CatalogSpec, parse_catalog
from store.commerce import CatalogVersion
from store.models import Account

_SPECS: dict[tuple[str, int], CatalogSpec] = {}  # (store URL, version)


def account_resolver(session: Session) -> Callable[[str], int | None]:
    """Account names of price books → ids (case-insensitive)."""
    def account_id(name: str) -> int | None:
        return session.scalar(select(Account.id).where(func.lower(Account.name) == name.lower()))
    return account_id


def load_spec(session: Session, version: int | None = None) -> tuple[int, CatalogSpec] | None:
    """A catalog version's parsed spec (the newest if ``version`` is None); None if there is
    no such version."""
    store = session.get_bind().engine.url.render_as_string(hide_password=True)
    if version is not None and (store, version) in _SPECS:
        return version, _SPECS[store, version]
    q = select(CatalogVersion).order_by(CatalogVersion.version.desc()).limit(1)
    if version is not None:
        q = select(CatalogVersion).where(CatalogVersion.version == version)
    row = session.scalar(q)
    if row is None:
        return None
    if (store, row.version) not in _SPECS:
        _SPECS[store, row.version] = parse_catalog(row.document, account_resolver(session))
    return row.version, _SPECS[store, row.version]
