"""The quote document: the quote's lines, bill of materials and terms rendered into DOCX,
converted to PDF with the quote's attachments (spec sheets, drawings) appended; both kept by
hash for the version they were made from."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable

from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from documents.assembly import BomRow, DocLine
from documents.attachments import Attachment, AttachmentError, pages_of
from documents.filenames import safe_filename
from documents.quote_document import (
    FIELDS,
    QuoteDocument,
    QuoteDocumentError,
    TemplateLimitExceeded,
    default_template,
    render_docx_isolated,
    render_pdf,
    template_fields_isolated,
)
from store import audit
from store.audit import entity
from store.blobs import BlobStore
from store.commerce import ProductDocument, QuoteAttachment, QuoteDocumentRow, QuoteTemplate
from store.db import write_lock
from store.models import Quote, User
from store.who import Who
from web.errors import Forbidden, Invalid, NotFound, TooLarge
from web.services import configurator
from web.services.catalog import spec_of

VALID_DAYS = 30
MAX_ATTACHMENT = 20 * 1024 * 1024
MEDIA_TYPES = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg"}
STANDARD_TERMS = [
    "Prices exclude taxes unless stated; invoices add the taxes of the buyer's region.",
    "Payment is due within 30 days of the invoice date.",
    "This quote is valid until the date on its cover and binds once both parties sign.",
]


def attachments_of(session: Session, quote: Quote) -> list[QuoteAttachment]:
    return list(session.scalars(select(QuoteAttachment).where(
        QuoteAttachment.quote_id == quote.id).order_by(QuoteAttachment.id)))


def add_attachment(session: Session, blobs: BlobStore, quote: Quote, actor: User, name: str,
                   media_type: str, data: bytes) -> QuoteAttachment:
    """A file appended to the quote's document, with its audit row (caller's write
    transaction)."""
    if quote.owner_id != actor.id:
        raise Forbidden("only the quote's owner can attach files")
    name = safe_filename(name, "attachment" + MEDIA_TYPES.get(media_type, ""))
    _checked(name, media_type, data)
    row = QuoteAttachment(quote_id=quote.id, name=name, media_type=media_type,
                          sha256=blobs.put(data), size=len(data))
    session.add(row)
    session.flush()
    audit.append(session, event_key=f"quote-attachment-{row.id}-added", actor=Who.user(actor),
                 action="quote.attachment_added", entity=entity("quote", quote.id),
                 data={"attachment": row.id, "name": row.name, "sha256": row.sha256,
                       "size": row.size})
    return row


def remove_attachment(session: Session, quote: Quote, actor: User, attachment_id: int) -> None:
    """Take a file off the quote, with its audit row (caller's write transaction)."""
    if quote.owner_id != actor.id:
        raise Forbidden("only the quote's owner can remove attachments")
    row = session.scalar(select(QuoteAttachment).where(QuoteAttachment.id == attachment_id,
                                                       QuoteAttachment.quote_id == quote.id))
    if row is None:
        raise NotFound(f"quote {quote.id} has no attachment {attachment_id}")
    session.delete(row)
    audit.append(session, event_key=f"quote-attachment-{row.id}-removed",
                 actor=Who.user(actor), action="quote.attachment_removed",
                 entity=entity("quote", quote.id),
                 data={"attachment": row.id, "name": row.name, "sha256": row.sha256})


def _checked(name: str, media_type: str, data: bytes) -> None:
    if media_type not in MEDIA_TYPES:
        raise Invalid(f"{name}: attach a PDF, PNG or JPEG (this is {media_type or 'unknown'})",
                      field="file")
    if len(data) > MAX_ATTACHMENT:
        raise TooLarge(f"{name} is over {MAX_ATTACHMENT // (1024 * 1024)} MB")
    if not data:
        raise Invalid(f"{name} is empty", field="file")
    try:
        pages_of(Attachment(name, data, media_type))  # refuse it now, not at generation
    except AttachmentError as e:
        raise Invalid(str(e), field="file") from None


def add_product_document(session: Session, blobs: BlobStore, actor: User, sku: str,
                         name: str, media_type: str, data: bytes) -> ProductDocument:
    """A spec sheet or drawing for a product: every quote document selling it appends it."""
    if sku not in spec_of(session)[1].catalog.products:
        raise Invalid(f"no product {sku!r} in the catalog", field="sku")
    name = safe_filename(name, "spec sheet" + MEDIA_TYPES.get(media_type, ""))
    _checked(name, media_type, data)
    write_lock(session)
    row = ProductDocument(sku=sku, name=name, media_type=media_type,
                          sha256=blobs.put(data), size=len(data), created_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.append(session, event_key=f"product-document-{row.id}", actor=Who.user(actor),
                 action="product_document.added", entity=entity("product", sku),
                 data={"document": row.id, "name": row.name, "sha256": row.sha256})
    return row


def remove_product_document(session: Session, actor: User, doc_id: int) -> None:
    """Stop appending a spec sheet, with its audit row (caller's write transaction)."""
    row = session.get(ProductDocument, doc_id)
    if row is None:
        raise NotFound(f"no spec sheet {doc_id}")
    session.delete(row)
    audit.append(session, event_key=f"product-document-{row.id}-removed",
                 actor=Who.user(actor), action="product_document.removed",
                 entity=entity("product", row.sku),
                 data={"document": row.id, "name": row.name, "sha256": row.sha256})


def product_documents(session: Session, skus: list[str] | None = None
                      ) -> list[ProductDocument]:
    q = select(ProductDocument).order_by(ProductDocument.sku, ProductDocument.id)
    if skus is not None:
        q = q.where(ProductDocument.sku.in_(skus))
    return list(session.scalars(q))


def _spec_sheets(session: Session, quote: Quote) -> list[ProductDocument]:
    """The spec sheets of the products the quote sells, in line order, each once."""
    skus: list[str] = []
    for it in configurator.items_of(session, quote):
        skus += [ln["sku"] for ln in it.priced.get("lines", []) if ln["sku"] not in skus]
    by_sku: dict[str, list[ProductDocument]] = {}
    for doc in product_documents(session, skus):
        by_sku.setdefault(doc.sku, []).append(doc)
    seen: set[str] = set()
    out = []
    for sku in skus:
        for doc in by_sku.get(sku, []):
            if doc.sha256 not in seen:
                seen.add(doc.sha256)
                out.append(doc)
    return out


def document_of(session: Session, quote: Quote, org_name: str,
                blobs: BlobStore) -> QuoteDocument:
    items = configurator.items_of(session, quote)
    lines, bom = [], []
    for it in items:
        top = it.priced["lines"][0]
        opts = [f"{ln['name']} × {ln['quantity'] // max(top['quantity'], 1)}"
                for ln in it.priced["lines"][1:]]
        attrs = it.selection.get("attributes") or {}
        opts += [f"{k.capitalize()}: {v}" for k, v in sorted(attrs.items())]
        lines.append(DocLine(it.position, top["sku"], top["name"], int(top["quantity"]),
                             "each", int(top["list_unit"]),
                             it.net_total // max(int(top["quantity"]), 1), it.net_total,
                             float(it.max_discount_pct), opts))
        bom += [BomRow(int(r["level"]), r["sku"], r["name"], int(r["quantity"]))
                for r in it.priced.get("bom", [])]
    if not items:
        lines.append(DocLine(1, "—", quote.title, 1, "each", quote.list_amount,
                             quote.net_amount, quote.net_amount, quote.discount_pct, []))
    today = dt.datetime.now(dt.UTC).date()
    return QuoteDocument(
        org_name=org_name, number=f"Q-{quote.id} v{quote.version}", title=quote.title,
        account_name=quote.account.name, prepared_by=quote.owner.name, issued=today,
        valid_until=today + dt.timedelta(days=VALID_DAYS), currency=quote.currency,
        channel=quote.channel, lines=lines, bom=bom, list_total=quote.list_amount,
        net_total=quote.net_amount, term_months=quote.term_months,
        terms=STANDARD_TERMS + [f"Agreed non-standard term: {t}."
                                for t in quote.nonstandard_terms],
        attachments=[*(Attachment(a.name, blobs.get(a.sha256), a.media_type)
                       for a in _spec_sheets(session, quote)),
                     *(Attachment(a.name, blobs.get(a.sha256), a.media_type)
                       for a in attachments_of(session, quote))])


def active_template(session: Session) -> QuoteTemplate | None:
    return session.scalar(select(QuoteTemplate).where(QuoteTemplate.active)
                          .order_by(QuoteTemplate.id.desc()).limit(1))


def _sample() -> QuoteDocument:
    """A quote with every part filled, to try an uploaded template on."""
    today = dt.date(2026, 1, 15)
    return QuoteDocument(
        org_name="Sample Org", number="Q-1 v1", title="Template check", account_name="Acme",
        prepared_by="Sam Sample", issued=today, valid_until=today, currency="USD",
        channel="direct", lines=[DocLine(1, "SKU-1", "Product", 2, "each", 10_000, 9_000,
                                         18_000, 10.0, ["Option × 1"])],
        bom=[BomRow(0, "SKU-1", "Product", 2), BomRow(1, "PART-1", "Part", 4)],
        list_total=20_000, net_total=18_000, term_months=12, terms=list(STANDARD_TERMS))


def upload_template(session: Session, blobs: BlobStore, actor: User, name: str,
                    data: bytes) -> QuoteTemplate:
    """Check an uploaded .docx template by rendering a sample quote with it (in the sandbox,
    in a separate process with time and memory limits: blocking, call it on a worker thread),
    then make it the one quote documents use."""
    name = safe_filename(name, "template.docx")
    if len(data) > MAX_ATTACHMENT:
        raise TooLarge(f"{name} is over {MAX_ATTACHMENT // (1024 * 1024)} MB")
    try:
        render_docx_isolated(_sample(), data)
        fields = template_fields_isolated(data)
    except QuoteDocumentError as e:
        raise Invalid(f"{name}: {e}", field="file") from None
    # The sample fills only the branches it takes: a name in another branch would fail a
    # real quote later, so every name the template uses must be one a quote has.
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise Invalid(f"{name}: the template uses {', '.join(unknown)}, which a quote doesn't "
                      f"have; a template can use {', '.join(FIELDS)}", field="file")
    write_lock(session)
    row = QuoteTemplate(name=name, sha256=blobs.put(data), created_by_id=actor.id)
    session.add(row)
    session.flush()
    _fields_seen[row.sha256] = fields
    audit.append(session, event_key=f"quote-template-{row.id}", actor=Who.user(actor),
                 action="quote_template.uploaded", entity=entity("quote-template", row.id),
                 data={"name": row.name, "sha256": row.sha256})
    return row


_fields_seen: dict[str, list[str]] = {}
"""Template hash → the fields it uses (templates never change under their hash)."""


def template_fields(blobs: BlobStore, template: QuoteTemplate | None) -> list[str]:
    """The quote fields the active template uses (the built-in starter's when none is);
    read in the sandbox once per template. Blocking: call it on a worker thread."""
    key = template.sha256 if template else ""
    if key not in _fields_seen:
        data = blobs.get(template.sha256) if template else default_template()
        _fields_seen[key] = [f for f in template_fields_isolated(data) if f in FIELDS]
    return _fields_seen[key]


def reset_template(session: Session, actor: User) -> None:
    """Back to the built-in template: each active upload is retired, with its audit row (a
    reset with none active changes nothing and writes nothing)."""
    write_lock(session)
    for row in session.scalars(select(QuoteTemplate).where(QuoteTemplate.active)):
        row.active = False
        audit.append(session, event_key=f"quote-template-{row.id}-reset",
                     actor=Who.user(actor), action="quote_template.reset",
                     entity=entity("quote-template", row.id),
                     data={"name": row.name, "sha256": row.sha256})


def generate(session: Session, quote: Quote, actor: User, blobs: BlobStore, org_name: str,
             convert: Callable[[bytes, str], bytes]) -> QuoteDocumentRow:
    """Render (with the uploaded template, if any), convert and store (blocking: call it on
    a worker thread)."""
    doc = document_of(session, quote, org_name, blobs)
    template = active_template(session)
    try:
        docx = render_docx_isolated(doc, blobs.get(template.sha256) if template else None)
        pdf = render_pdf(docx, convert, doc.attachments)
    except TemplateLimitExceeded as e:
        name = template.name if template else "the built-in template"
        raise Invalid(f"{name}: {e}", field="file") from None
    except QuoteDocumentError as e:
        raise Invalid(str(e), field="file") from None
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    docx_sha, pdf_sha = blobs.put(docx), blobs.put(pdf)
    write_lock(session)
    row = QuoteDocumentRow(quote_id=quote.id, version=quote.version, docx_sha256=docx_sha,
                           pdf_sha256=pdf_sha, pages=pages, created_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.append(session, event_key=f"quote-{quote.id}-document-{pdf_sha}",
                 actor=Who.user(actor), action="quote.document_generated",
                 entity=entity("quote", quote.id),
                 data={"version": quote.version, "docx_sha256": docx_sha,
                       "pdf_sha256": pdf_sha, "pages": pages})
    session.commit()
    return row


def latest_document(session: Session, quote: Quote) -> QuoteDocumentRow | None:
    return session.scalar(select(QuoteDocumentRow).where(
        QuoteDocumentRow.quote_id == quote.id).order_by(QuoteDocumentRow.id.desc()).limit(1))
