"""Quote documents through the app: the built-in template, an uploaded one (sandboxed, checked
on upload), attachments appended, and who may do what. Real LibreOffice, real pdftotext."""

from __future__ import annotations

import asyncio
import io
import subprocess

import docx
from PIL import Image
from pypdf import PdfReader
from sqlalchemy.orm import Session, sessionmaker

from store.models import Quote
from tests.cpq_support import Cast, cast
from tests.pdfs import contract_pdf
from tests.web_support import browser_session, token_client

__all__ = ["cast"]


def template(*paragraphs: str) -> bytes:
    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (800, 400), "steelblue").save(out, "PNG")
    return out.getvalue()


async def pdf_text(pdf: bytes) -> str:
    done = await asyncio.to_thread(subprocess.run, ["pdftotext", "-layout", "-", "-"],
                                   input=pdf, capture_output=True, check=True)
    return str(done.stdout.decode())


async def test_template_attachments_and_permissions(live_url: str, cast: Cast,
                                                    sessions: sessionmaker[Session]) -> None:
    rep = await token_client(live_url, cast.rep)
    r = await rep.post("/api/v1/quotes", json={"account_id": cast.account, "term_months": 12,
                                               "title": "Hub & seats <pilot>", "currency": "USD"})
    qid = r.json()["id"]
    assert (await rep.post(f"/api/v1/quotes/{qid}/items",
                           json={"selection": {"sku": "ANL-HUB"}})).status_code == 201

    r = await rep.post(f"/api/v1/quotes/{qid}/document")
    assert r.status_code == 201, r.text
    built_in = (await rep.get(r.json()["pdf_url"])).content
    text = await pdf_text(built_in)
    assert "Hub & seats <pilot>" in text and "ANL-SEAT" in text and "SVC-ONBOARD" in text
    pages = len(PdfReader(io.BytesIO(built_in)).pages)

    browser, csrf = await browser_session(live_url, cast.rep)
    r = await browser.post(f"/quotes/{qid}/attachments", headers={"X-CSRF-Token": csrf},
                           files={"file": ("drawing.png", png(), "image/png")})
    assert r.status_code == 303, r.text
    r = await browser.post(f"/quotes/{qid}/attachments", headers={"X-CSRF-Token": csrf},
                           files={"file": ("notes.txt", b"hello", "text/plain")})
    assert r.status_code == 422 and "attach a PDF, PNG or JPEG" in r.text
    r = await browser.post(f"/quotes/{qid}/attachments", headers={"X-CSRF-Token": csrf},
                           files={"file": ("fake.png", b"GIF89a not really", "image/png")})
    assert r.status_code == 422 and "fake.png is not a readable PNG image" in r.text

    admin, admin_csrf = await browser_session(live_url, cast.admin)
    evil = template("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    r = await admin.post("/catalog/quote-template", headers={"X-CSRF-Token": admin_csrf},
                         files={"file": ("evil.docx", evil, "application/octet-stream")})
    assert r.status_code == 422 and "evil.docx" in r.text
    r = await browser.post("/catalog/quote-template", headers={"X-CSRF-Token": csrf},
                           files={"file": ("mine.docx", template("x"), "application/x")})
    assert r.status_code == 403  # reps don't set the company's template
    custom = template("Custom quote {{ number }}: {{ title }} for {{ account_name }}",
                      "{% for l in lines %}{{ l.sku }} ×{{ l.quantity }}{% endfor %}")
    r = await admin.post("/catalog/quote-template", headers={"X-CSRF-Token": admin_csrf},
                         files={"file": ("ours.docx", custom, "application/octet-stream")})
    assert r.status_code == 303, r.text

    r = await rep.post(f"/api/v1/quotes/{qid}/document")
    assert r.status_code == 201, r.text
    pdf = (await rep.get(r.json()["pdf_url"])).content
    text = await pdf_text(pdf)
    assert f"Custom quote Q-{qid} v1: Hub & seats <pilot> for Initech" in text
    assert "ANL-HUB ×1" in text
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 2  # one page of template + the drawing
    docx_file = (await rep.get(f"/quotes/{qid}/document.docx")).content
    assert b"word/document.xml" in docx_file

    # Send for signature: only once approved; the form comes with the quote's PDF kept.
    r = await browser.get(f"/envelopes/new?quote_id={qid}")
    assert r.status_code == 409 and "only an approved quote" in r.text
    with sessions.begin() as s:
        quote = s.get(Quote, qid)
        assert quote is not None
        quote.status = "approved"
    r = await browser.get(f"/envelopes/new?quote_id={qid}")
    assert r.status_code == 200
    assert f'name="quote_id" value="{qid}"' in r.text and f"Quote Q-{qid} v1.pdf" in r.text
    other = await token_client(live_url, cast.manager)
    assert (await other.post(f"/api/v1/quotes/{qid}/document")).status_code == 403
    assert (await other.get(f"/quotes/{qid}/document.pdf")).status_code == 200  # approvers read
    r = await admin.post("/catalog/quote-template/reset", headers={"X-CSRF-Token": admin_csrf})
    assert r.status_code == 303
    r = await rep.post(f"/api/v1/quotes/{qid}/document")
    again = (await rep.get(r.json()["pdf_url"])).content
    assert len(PdfReader(io.BytesIO(again)).pages) == pages + 1  # built-in again + drawing


async def test_spec_sheets_follow_the_products_a_quote_sells(live_url: str, cast: Cast) -> None:
    admin, csrf = await browser_session(live_url, cast.admin)
    for sku, pages in (("ANL-SEAT", 2), ("WS-9", 3)):
        r = await admin.post("/catalog/product-documents", headers={"X-CSRF-Token": csrf},
                             data={"sku": sku},
                             files={"file": (f"{sku} sheet.pdf", contract_pdf(pages),
                                             "application/pdf")})
        assert r.status_code == 303, r.text
    r = await admin.post("/catalog/product-documents", headers={"X-CSRF-Token": csrf},
                         data={"sku": "NOPE"},
                         files={"file": ("x.pdf", contract_pdf(1), "application/pdf")})
    assert r.status_code == 422 and "no product" in r.text
    rep = await token_client(live_url, cast.rep)
    r = await rep.post("/api/v1/quotes", json={"account_id": cast.account, "term_months": 12,
                                               "title": "Seats", "currency": "USD"})
    qid = r.json()["id"]
    await rep.post(f"/api/v1/quotes/{qid}/items", json={"selection": {"sku": "ANL-HUB"}})
    bare = await rep.post(f"/api/v1/quotes/{qid}/document")
    text = await pdf_text((await rep.get(bare.json()["pdf_url"])).content)
    # The hub sells seats (an option): the seat sheet's 2 pages are appended, the
    # workstation's aren't.
    assert text.count("ANL-SEAT") >= 1 and "clause 7 as written" in text
    reader = PdfReader(io.BytesIO((await rep.get(bare.json()["pdf_url"])).content))
    assert sum("clause 7 as written" in (p.extract_text() or "") for p in reader.pages) == 2


async def test_a_template_names_only_fields_a_quote_has_and_the_page_lists_them(
        live_url: str, cast: Cast) -> None:
    """The sample render takes one branch; a field in the other is caught by name at upload,
    and nothing is stored. The catalog page lists the fields, ticking those in use."""
    admin, csrf = await browser_session(live_url, cast.admin)
    sneaky = template("Quote {{ number }}",
                      "{% if term_months > 999 %}Code {{ discount_code }}{% endif %}")
    r = await admin.post("/catalog/quote-template", headers={"X-CSRF-Token": csrf},
                         files={"file": ("sneaky.docx", sneaky, "application/octet-stream")})
    assert r.status_code == 422
    assert "sneaky.docx: the template uses discount_code, which a quote doesn" in r.text
    page = (await admin.get("/catalog")).text
    assert "Using the built-in template" in page

    fine = template("Quote {{ number }} for {{ account_name }}",
                    "{% for l in lines %}{{ l.sku }} {{ range(2)|length }}{% endfor %}")
    r = await admin.post("/catalog/quote-template", headers={"X-CSRF-Token": csrf},
                         files={"file": ("fine.docx", fine, "application/octet-stream")})
    assert r.status_code == 303, r.text
    page = (await admin.get("/catalog")).text
    assert "3 used by this template" in page
    used = [m for m in ("number", "account_name", "lines", "title")
            if f"<code>{m}</code></td><td>" in page and
            page.split(f"<code>{m}</code>")[1].split("</tr>")[0].endswith("✓</td>")]
    assert used == ["number", "account_name", "lines"]
