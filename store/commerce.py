"""Tables of the commercial side: catalog versions, configured quote items, invoices and
their gap-free number sequence. (Imported by :mod:`store.models` users through
``store.commerce``; Alembic sees them via ``store/migrations/env.py``.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models import Account, Base, Quote, utcnow


class CatalogVersion(Base):
    """The catalog document (products, rules, schedules, price books, partner terms,
    rounding, taxes), versioned like policies: every save is a new row, the newest is
    active, and each quote records the version it was priced with."""

    __tablename__ = "catalog_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    source: Mapped[str] = mapped_column(Text)
    document: Mapped[dict[str, Any]] = mapped_column()
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class QuoteItem(Base):
    """One configured top-level product of a quote version, with its priced lines (the
    waterfall of each), bill of materials and rule findings as last priced. Items of a
    submitted version are never changed: editing copies them to the next version."""

    __tablename__ = "quote_items"
    __table_args__ = (UniqueConstraint("quote_id", "version", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    selection: Mapped[dict[str, Any]] = mapped_column()
    manual_discount_pct: Mapped[str] = mapped_column(String(12), default="0")
    priced: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The priced totals, as columns so a quote's totals are one SUM (adding a line to a
    # 2,000-line quote doesn't re-read the others).
    list_total: Mapped[int] = mapped_column(BigInteger, default=0)
    net_total: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_total: Mapped[int] = mapped_column(BigInteger, default=0)
    max_discount_pct: Mapped[float] = mapped_column(default=0.0)


class InvoiceSequence(Base):
    """The next invoice number. Taken in the same transaction as the invoice row, so a
    rollback gives the number back: numbers are gap-free and never reused."""

    __tablename__ = "invoice_sequences"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_value: Mapped[int] = mapped_column(Integer, default=1)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("quote_id", "installment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"), index=True)
    quote_version: Mapped[int] = mapped_column(Integer)
    installment: Mapped[int] = mapped_column(Integer)
    """1-based index in the deal's billing schedule."""
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    issued: Mapped[dt.date] = mapped_column(Date)
    due: Mapped[dt.date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="issued")
    document: Mapped[dict[str, Any]] = mapped_column()
    """Lines, tax lines and the schedule as issued (the PDF is rendered from it)."""
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(lazy="joined")
    quote: Mapped[Quote] = relationship()


class QuoteAttachment(Base):
    """A spec sheet or drawing (PDF or image) appended to the quote document."""

    __tablename__ = "quote_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(50))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class QuoteDocumentRow(Base):
    """A generated quote document: the DOCX and its PDF, both kept by hash."""

    __tablename__ = "quote_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    docx_sha256: Mapped[str] = mapped_column(String(64))
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    pages: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class QuoteTemplate(Base):
    """An uploaded quote document template (.docx, rendered in a sandbox); the newest is
    used, none means the built-in one."""

    __tablename__ = "quote_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ProductDocument(Base):
    """A product's spec sheet or drawing (PDF or image), appended to every quote document
    that sells the product."""

    __tablename__ = "product_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(50))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
