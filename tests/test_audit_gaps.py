"""Every state change writes its one audit row, in its own transaction, through the use cases
the routes call: attachments and spec sheets added and removed, the quote template reset, a
deal won (whichever path), its invoice issued and paid. Doing the same again (a retry, a
double click) writes nothing more. Ten attachments added at once keep the chain linear.

Elsewhere: signer lockouts (tests/test_envelope_web.py), claims and delegations
(tests/test_roles.py), out-of-office windows (tests/test_roles.py), users created by the CLI
(tests/test_cli.py), the approval chain's rows (tests/test_audit.py).
"""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store import audit, invoicing
from store.blobs import BlobStore
from store.commerce import QuoteTemplate
from store.db import write_lock
from store.models import AuditEvent, Quote, User
from store.who import Who
from tests.cpq_support import Cast, cast
from tests.pdfs import contract_pdf
from tests.support import make_account, make_quote
from web.errors import Conflict, NotFound
from web.services import invoices
from web.services import quote_documents as docs

__all__ = ["cast"]


def rows(sessions: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)))


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "teal").save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def blobs(settings: Settings) -> BlobStore:
    return BlobStore(settings.blob_dir)


def _quote(sessions: sessionmaker[Session], owner: User, **over: object) -> int:
    with sessions() as s:
        write_lock(s)
        qid = make_quote(s, s.merge(owner), make_account(s), **over).id
        s.commit()
    return qid


def test_attachments_added_and_removed(sessions: sessionmaker[Session], cast: Cast,
                                       blobs: BlobStore) -> None:
    qid = _quote(sessions, cast.rep)
    with sessions() as s:
        write_lock(s)
        row = docs.add_attachment(s, blobs, s.get(Quote, qid), s.merge(cast.rep),
                                  "drawing.png", "image/png", png())
        s.commit()
        for _ in range(2):  # the second time: nothing left to remove, nothing written
            write_lock(s)
            try:
                docs.remove_attachment(s, s.get(Quote, qid), s.merge(cast.rep), row.id)
                s.commit()
            except NotFound:
                s.rollback()
    [added] = rows(sessions, "quote.attachment_added")
    [removed] = rows(sessions, "quote.attachment_removed")
    for ev in (added, removed):
        assert ev.entity == f"quote:{qid}"
        assert audit.who_of(ev) == Who("user", cast.rep.id, cast.rep.email, cast.rep.name)
        assert ev.data["attachment"] == row.id and ev.data["name"] == "drawing.png"


def test_spec_sheets_added_and_removed(sessions: sessionmaker[Session], cast: Cast,
                                       blobs: BlobStore) -> None:
    with sessions() as s:
        sheet = docs.add_product_document(s, blobs, s.merge(cast.admin), "ANL-SEAT",
                                          "seat.pdf", "application/pdf", contract_pdf(1))
        s.commit()
        write_lock(s)
        docs.remove_product_document(s, s.merge(cast.desk), sheet.id)
        s.commit()
        write_lock(s)
        with pytest.raises(NotFound):
            docs.remove_product_document(s, s.merge(cast.desk), sheet.id)
        s.rollback()
    [added] = rows(sessions, "product_document.added")
    [removed] = rows(sessions, "product_document.removed")
    assert added.entity == removed.entity == "product:ANL-SEAT"
    assert (added.actor_user_id, removed.actor_user_id) == (cast.admin.id, cast.desk.id)


def test_a_template_reset_is_recorded_once(sessions: sessionmaker[Session],
                                           cast: Cast) -> None:
    with sessions.begin() as s:
        template = QuoteTemplate(name="ours.docx", sha256="0" * 64, created_by_id=cast.admin.id)
        s.add(template)
    for _ in range(2):  # resetting the built-in template again changes nothing
        with sessions() as s:
            docs.reset_template(s, s.merge(cast.admin))
            s.commit()
    [reset] = rows(sessions, "quote_template.reset")
    assert reset.entity == f"quote-template:{template.id}"
    assert reset.event_key == f"quote-template-{template.id}-reset"


def test_won_issued_and_paid_once_each(sessions: sessionmaker[Session], cast: Cast) -> None:
    qid = _quote(sessions, cast.rep)
    by_envelope = Who.system("worker:record_outcome")
    with sessions() as s:
        write_lock(s)
        quote = s.get(Quote, qid)
        assert quote is not None
        quote.status = "approved"
        s.commit()
        for who in (Who.user(cast.desk), by_envelope):  # a person, then a signed envelope
            write_lock(s)
            invoicing.win(s, s.get(Quote, qid), who, via="test")
            s.commit()
        first = invoicing.issue(s, qid, 1)
        assert invoicing.issue(s, qid, 1).id == first.id
    [won] = rows(sessions, "quote.won")
    assert (won.entity, won.event_key) == (f"quote:{qid}", f"quote-{qid}-won")
    assert audit.who_of(won) == Who("user", cast.desk.id, cast.desk.email, cast.desk.name)
    [issued] = rows(sessions, "invoice.issued")
    assert issued.entity == f"invoice:{first.number}"
    assert audit.who_of(issued) == Who.system("worker:issue_invoice")
    assert issued.data["quote"] == f"quote:{qid}"

    with sessions() as s:
        from store.commerce import Invoice

        admin = s.merge(cast.admin)
        invoices.set_status(s, s.get(Invoice, first.id), admin, "paid", "wire 42")
        s.commit()
        with pytest.raises(Conflict):
            invoices.set_status(s, s.get(Invoice, first.id), admin, "paid")
        s.rollback()
    [paid] = rows(sessions, "invoice.paid")
    assert paid.entity == f"invoice:{first.number}" and paid.actor_user_id == cast.admin.id


async def test_ten_attachments_at_once_keep_the_chain_linear(
        sessions: sessionmaker[Session], cast: Cast, blobs: BlobStore) -> None:
    qid = _quote(sessions, cast.rep)

    def attach(n: int) -> None:
        with sessions() as s:
            write_lock(s)
            docs.add_attachment(s, blobs, s.get(Quote, qid), s.merge(cast.rep),
                                f"drawing {n}.png", "image/png", png())
            s.commit()

    await asyncio.gather(*(asyncio.to_thread(attach, n) for n in range(10)))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "quote.attachment_added")) == 10
        assert audit.verify(s).ok
