"""The RFP workspace through the API of a live app: real customer files in, questions and
library suggestions out, answers back into the customer's own file (every other part byte for
byte), refusals naming the problem with nothing written, roles, promotion to the library, and
parallel use of one app."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docx
import httpx
import openpyxl
import pytest
from pypdf import PdfReader
from reportlab.pdfgen import canvas
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store.deals import Deal
from store.library import LibraryItem
from store.models import AuditEvent
from store.rfps import Rfp, RfpQuestion
from tests.library_support import create
from tests.support import make_user, serve
from tests.test_rfp_files import (
    ALASKA_FORMS,
    GSA_PRICING,
    _parts,
    _zip,
    assert_only_parts_changed,
    encrypted,
)
from tests.web_support import People, browser_session, seed_people, token_client
from web.services import rfps as service

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A 1 MB upload limit keeps the oversize tests small."""
    return settings.model_copy(update={"max_upload_mb": 1})


@pytest.fixture
async def app_url(settings: Settings) -> AsyncIterator[str]:
    async with serve(settings) as url:
        yield url


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


def _count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _blobs(settings: Settings) -> list[Path]:
    return [p for p in settings.blob_dir.rglob("*") if p.is_file()]


async def upload(client: httpx.AsyncClient, name: str, data: bytes,
                 title: str = "") -> httpx.Response:
    return await client.post("/api/v1/rfps", files={"file": (name, data)},
                             data={"title": title} if title else {})


async def test_docx_questions_suggestions_answers_and_download(
        app_url: str, people: People, sessions: sessionmaker[Session]) -> None:
    await docx_scenario(app_url, people, sessions)


async def docx_scenario(app_url: str, people: People, sessions: sessionmaker[Session]) -> None:
    """Shared with tests/test_rfps_pg.py."""
    rep = await token_client(app_url, people.rep)
    item = await create(rep, title="Alaska business license number",
                        body="Our Alaska Business License # is AK-123456.",
                        tags=["licensing"])
    r = await upload(rep, "forms.docx", ALASKA_FORMS, "Alaska IES")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "open"
    by_loc = {q["location"]: q for q in created["questions"]}
    assert by_loc["docx:t:1:r:0:c:1"]["text"] == "Company Name:"
    rfp_id = created["id"]

    got = (await rep.get(f"/api/v1/rfps/{rfp_id}")).json()
    qs = {q["location"]: q for q in got["questions"]}
    license_q = qs["docx:t:1:r:3:c:1"]
    assert license_q["suggestions"] and license_q["suggestions"][0]["item_id"] == item
    assert license_q["status"] == "suggested"  # the best score cleared the threshold
    assert license_q["answer"] == "Our Alaska Business License # is AK-123456."

    name_q = qs["docx:t:1:r:0:c:1"]
    for qid, text in ((name_q["id"], "Acme Corp"), (license_q["id"], "AK-123456")):
        r = await rep.put(f"/api/v1/rfps/{rfp_id}/questions/{qid}/answer", json={"text": text})
        assert r.status_code == 200, r.text
    r = await rep.post(f"/api/v1/rfps/{rfp_id}/approve")
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text

    r = await rep.get(f"/api/v1/rfps/{rfp_id}/document")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == DOCX
    assert 'filename="forms (answered).docx"' in r.headers["content-disposition"]
    assert_only_parts_changed(ALASKA_FORMS, r.content, {"word/document.xml"})
    table = docx.Document(io.BytesIO(r.content)).tables[1]
    assert table.rows[0].cells[1].text == "Acme Corp"
    assert table.rows[3].cells[1].text == "AK-123456"

    r = await rep.get(f"/api/v1/rfps/{rfp_id}/response.docx")
    assert r.status_code == 200 and r.headers["content-type"] == DOCX
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(r.content)).paragraphs)
    assert "Company Name:" in text and "Acme Corp" in text
    r = await rep.get(f"/api/v1/rfps/{rfp_id}/response.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert 'response.pdf"' in r.headers["content-disposition"]
    pdf_text = " ".join(PdfReader(io.BytesIO(r.content)).pages[0].extract_text().split())
    assert "Company Name:" in pdf_text and "Acme Corp" in pdf_text

    # One click: an approved answer becomes a library item tagged "rfp".
    r = await rep.post(f"/api/v1/rfps/{rfp_id}/questions/{name_q['id']}/promote")
    assert r.status_code == 201, r.text
    promoted = (await rep.get(f"/api/v1/library/items/{r.json()['item_id']}")).json()
    assert (promoted["title"], promoted["body"], promoted["tags"]) == (
        "Company Name:", "Acme Corp", ["rfp"])
    with sessions() as s:
        actions = set(s.scalars(select(AuditEvent.action).where(
            AuditEvent.entity == f"rfp:{rfp_id}")))
        assert {"rfp.created", "rfp.answered", "rfp.approved",
                "rfp.answer_promoted"} <= actions
        q = s.get(RfpQuestion, name_q["id"])
        assert q is not None and q.library_item_id == promoted["id"]

    listed = (await rep.get("/api/v1/rfps")).json()
    assert listed[0]["id"] == rfp_id and listed[0]["answered"] >= 2
    # Recalled: nothing changes after.
    assert (await rep.post(f"/api/v1/rfps/{rfp_id}/recall")).json()["status"] == "recalled"
    r = await rep.put(f"/api/v1/rfps/{rfp_id}/questions/{name_q['id']}/answer",
                      json={"text": "late"})
    assert r.status_code == 409 and r.json()["field"] == "status", r.text


async def test_xlsx_needs_a_mapping_then_answers_go_in_its_cells(app_url: str,
                                                                 people: People) -> None:
    rep = await token_client(app_url, people.rep)
    r = await upload(rep, "pricing.xlsx", GSA_PRICING)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "needs_mapping" and not created["questions"]
    offeror = next(c for c in created["candidates"] if c["sheet"] == "CLIN Structure")
    assert offeror["samples"][0] == "Name of Offeror:"
    rfp_id = created["id"]
    r = await rep.get(f"/api/v1/rfps/{rfp_id}/document")
    assert r.status_code == 409 and r.json()["field"] == "mapping"
    bad = {**offeror, "sheet": "Nope"}
    r = await rep.post(f"/api/v1/rfps/{rfp_id}/mapping", json=bad)
    assert r.status_code == 422 and r.json()["field"] == "mapping", r.text
    assert "Nope" in r.json()["detail"]
    r = await rep.post(f"/api/v1/rfps/{rfp_id}/mapping", json={
        k: offeror[k] for k in ("sheet", "header_row", "question_column", "answer_column")})
    assert r.status_code == 200, r.text
    mapped = r.json()
    assert mapped["status"] == "open"
    assert [q["location"] for q in mapped["questions"]] == [
        "xlsx:CLIN Structure!C3", "xlsx:CLIN Structure!C4", "xlsx:CLIN Structure!C5"]
    r = await rep.put(f"/api/v1/rfps/{rfp_id}/questions/{mapped['questions'][0]['id']}/answer",
                      json={"text": "Acme Corp"})
    assert r.status_code == 200
    assert (await rep.post(f"/api/v1/rfps/{rfp_id}/approve")).status_code == 200
    r = await rep.get(f"/api/v1/rfps/{rfp_id}/document")
    assert r.status_code == 200 and r.headers["content-type"] == XLSX
    assert_only_parts_changed(GSA_PRICING, r.content, {"xl/worksheets/sheet1.xml"})
    book = openpyxl.load_workbook(io.BytesIO(r.content))
    assert book["CLIN Structure"]["C3"].value == "Acme Corp"


async def test_bad_files_are_refused_naming_the_problem_and_nothing_is_written(
        app_url: str, people: People, sessions: sessionmaker[Session],
        settings: Settings) -> None:
    rep = await token_client(app_url, people.rep)
    xlsm = _zip({**_parts(GSA_PRICING), "xl/vbaProject.bin": b"\0" * 64})
    cases = [
        ("half.docx", ALASKA_FORMS[: len(ALASKA_FORMS) // 2], 422, "damaged"),
        ("locked.docx", encrypted(ALASKA_FORMS), 422, "locked.docx is password-protected"),
        ("locked.xlsx", encrypted(GSA_PRICING), 422, "locked.xlsx is password-protected"),
        ("macros.xlsm", xlsm, 422, "macro-enabled"),
        ("notes.txt", b"hello", 422, ".docx"),
        # One byte over the installation's max_upload_mb (1 MB here).
        ("huge.docx", b"PK" + b"\0" * (1024 * 1024 - 1), 413, "huge.docx is larger than 1 MB"),
    ]
    for name, data, status, words in cases:
        r = await upload(rep, name, data)
        assert r.status_code == status, (name, r.text)
        assert r.json()["field"] == "file" and words in r.json()["detail"], (name, r.text)
    assert _count(sessions, Rfp) == 0 and _count(sessions, RfpQuestion) == 0
    assert _blobs(settings) == []


async def test_the_upload_form_refuses_an_oversized_file_before_reading_it(
        app_url: str, people: People, sessions: sessionmaker[Session],
        settings: Settings) -> None:
    client, csrf = await browser_session(app_url, people.rep)
    page = await client.get("/rfps/new")
    assert "up to 1 MB" in page.text
    # Far over: refused from its Content-Length, ahead of the login and CSRF checks.
    far = {"file": ("huge.docx", b"PK" + b"\0" * (2 * 1024 * 1024))}
    for data in ({"csrf_token": csrf}, {}):
        r = await client.post("/rfps/new", files=far, data=data)
        assert r.status_code == 413, r.text
        assert "RFP files may be up to 1 MB" in r.text
    # Just over (within the form's overhead): the file is read one byte past the limit.
    near = {"file": ("near.docx", b"PK" + b"\0" * (1024 * 1024 - 1))}
    r = await client.post("/rfps/new", files=near, data={"csrf_token": csrf, "title": "Near"})
    assert r.status_code == 413 and "Nothing was stored" in r.text
    assert "near.docx is larger than 1 MB" in r.text and 'value="Near"' in r.text
    assert _count(sessions, Rfp) == 0 and _blobs(settings) == []


def test_the_upload_limit_is_the_setting_capped_by_what_the_reader_takes(
        settings: Settings) -> None:
    assert service.limit_mb(settings) == 1
    assert service.limit_mb(settings.model_copy(update={"max_upload_mb": 500})) == 47
    assert service.MAX_BYTES >= 47 * 1024 * 1024


async def test_roles(app_url: str, people: People) -> None:
    rep = await token_client(app_url, people.rep)
    auditor = await token_client(app_url, people.auditor)
    finance = await token_client(app_url, people.finance)
    r = await upload(auditor, "forms.docx", ALASKA_FORMS)
    assert r.status_code == 403, r.text
    rfp_id = (await upload(rep, "forms.docx", ALASKA_FORMS)).json()["id"]
    assert (await auditor.get(f"/api/v1/rfps/{rfp_id}")).status_code == 200
    assert (await auditor.get("/api/v1/rfps")).status_code == 200
    qid = (await rep.get(f"/api/v1/rfps/{rfp_id}")).json()["questions"][0]["id"]
    r = await auditor.put(f"/api/v1/rfps/{rfp_id}/questions/{qid}/answer", json={"text": "x"})
    assert r.status_code == 403
    assert (await finance.get(f"/api/v1/rfps/{rfp_id}")).status_code == 403
    assert (await auditor.post(f"/api/v1/rfps/{rfp_id}/approve")).status_code == 403
    assert (await rep.get("/api/v1/rfps/999999")).status_code == 404


async def test_parallel_uploads_and_answers_on_one_app(app_url: str, people: People,
                                                       sessions: sessionmaker[Session]) -> None:
    rep = await token_client(app_url, people.rep)
    legal = await token_client(app_url, people.legal)
    rfp_id = (await upload(rep, "forms.docx", ALASKA_FORMS)).json()["id"]
    qids = [q["id"] for q in (await rep.get(f"/api/v1/rfps/{rfp_id}")).json()["questions"]]
    assert len(qids) >= 20

    async def put(n: int, qid: int) -> httpx.Response:
        who = rep if n % 2 else legal
        return await who.put(f"/api/v1/rfps/{rfp_id}/questions/{qid}/answer",
                             json={"text": f"answer {n}"})

    results = await asyncio.gather(
        *(upload(rep, f"forms-{n}.docx", ALASKA_FORMS) for n in range(10)),
        *(put(n, qid) for n, qid in enumerate(qids[:20])))
    assert [r.status_code for r in results if r.status_code >= 500] == []
    assert [r.status_code for r in results[:10]] == [201] * 10
    assert [r.status_code for r in results[10:]] == [200] * 20
    assert _count(sessions, Rfp) == 11
    with sessions() as s:
        answers = {q.id: q.answer for q in s.scalars(select(RfpQuestion).where(
            RfpQuestion.rfp_id == rfp_id))}
        assert [answers[qid] for qid in qids[:20]] == [f"answer {n}" for n in range(20)]
        rows = s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.entity == f"rfp:{rfp_id}", AuditEvent.action == "rfp.answered"))
        assert rows == 20
    assert _count(sessions, LibraryItem) == 0


async def test_pages_upload_map_answer_with_htmx(app_url: str, people: People) -> None:
    client, csrf = await browser_session(app_url, people.rep)
    empty = await client.get("/rfps")
    assert empty.status_code == 200 and "No RFPs yet" in empty.text
    r = await client.post("/rfps/new", files={"file": ("pricing.xlsx", GSA_PRICING)},
                          data={"csrf_token": csrf, "title": "GSA pricing"})
    assert r.status_code == 303, r.text
    mapping = await client.get(r.headers["location"])
    assert "Name of Offeror:" in mapping.text and 'name="choice"' in mapping.text
    assert mapping.text.count('name="choice"') >= 2
    # The CLIN Structure candidate: pick it by its position in the list.
    rfp_id = int(r.headers["location"].split("/")[2])
    candidates = (await client.get(f"/api/v1/rfps/{rfp_id}")).json()["candidates"]
    index = next(n for n, c in enumerate(candidates) if c["sheet"] == "CLIN Structure")
    r = await client.post(f"/rfps/{rfp_id}/mapping", data={"csrf_token": csrf,
                                                          "choice": str(index)})
    assert r.status_code == 303 and r.headers["location"] == f"/rfps/{rfp_id}"
    page = await client.get(f"/rfps/{rfp_id}")
    assert "Name of Offeror:" in page.text and "0 of 3 answered" in page.text
    qid = (await client.get(f"/api/v1/rfps/{rfp_id}")).json()["questions"][0]["id"]
    r = await client.post(f"/rfps/{rfp_id}/questions/{qid}/answer", data={"text": "Acme"},
                          headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert r.text.lstrip().startswith(f'<li class="card rfp-question status-answered" '
                                      f'id="q-{qid}"')
    assert "1 of 3 answered" in r.text and 'hx-swap-oob="true"' in r.text
    assert "<html" not in r.text
    listed = await client.get("/rfps")
    assert "GSA pricing" in listed.text and "1 of 3 answered" in listed.text
    # The remaining questions go to an expert (the workflow is started; no worker runs here).
    assert f'action="/rfps/{rfp_id}/assign"' in page.text
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    r = await client.post(f"/rfps/{rfp_id}/assign", data={
        "csrf_token": csrf, "assignee_id": str(people.legal.id), "due": due})
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"])
    assert "handed to the expert" in page.text and page.text.count("Lou Legal") == 2
    assert f'action="/rfps/{rfp_id}/assign"' not in page.text
    bad = await client.post("/rfps/new", files={"file": ("notes.txt", b"hi")},
                            data={"csrf_token": csrf})
    assert bad.status_code == 422 and "Nothing was stored" in bad.text


def _questionnaire_pdf() -> bytes:
    out = io.BytesIO()
    pdf = canvas.Canvas(out)
    for y, line in ((800, "Security questionnaire"), (770, "1. Describe your support model."),
                    (740, "2. Do you hold ISO 27001?")):
        pdf.drawString(72, y, line)
    pdf.save()
    return out.getvalue()


async def test_pdf_answers_go_in_the_response_document_and_retries_make_one_rfp(
        app_url: str, people: People, sessions: sessionmaker[Session]) -> None:
    rep = await token_client(app_url, people.rep)
    data = _questionnaire_pdf()
    first, again = [await rep.post("/api/v1/rfps", files={"file": ("security.pdf", data)},
                                   headers={"Idempotency-Key": "k-1"}) for _ in range(2)]
    assert first.status_code == again.status_code == 201, first.text
    assert first.json()["id"] == again.json()["id"] and _count(sessions, Rfp) == 1
    rfp = first.json()
    assert [q["location"] for q in rfp["questions"]] == ["pdf:1:1", "pdf:1:2"]
    qid = rfp["questions"][1]["id"]
    r = await rep.put(f"/api/v1/rfps/{rfp['id']}/questions/{qid}/answer",
                      json={"text": "Yes, since 2019."})
    assert r.status_code == 200
    r = await rep.get(f"/api/v1/rfps/{rfp['id']}/document")
    assert r.status_code == 200 and r.headers["content-type"] == DOCX
    assert 'filename="security response.docx"' in r.headers["content-disposition"]
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(r.content)).paragraphs)
    assert "Do you hold ISO 27001?" in text and "Yes, since 2019." in text
    # The same key for another file is refused, naming the header.
    r = await rep.post("/api/v1/rfps", files={"file": ("forms.docx", ALASKA_FORMS)},
                       headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 422 and r.json()["field"] == "Idempotency-Key", r.text


async def test_suggestions_are_kept_and_ranked_again_after_a_library_change(
        app_url: str, people: People, sessions: sessionmaker[Session]) -> None:
    """Reading an RFP doesn't rank its questions again, until the library changes."""
    rep = await token_client(app_url, people.rep)
    await create(rep, title="Alaska business license number",
                 body="Our Alaska Business License # is AK-123456.", tags=["licensing"])
    rfp_id = (await upload(rep, "forms.docx", ALASKA_FORMS)).json()["id"]

    def ranked_at() -> object:
        with sessions() as s:
            return s.get_one(Rfp, rfp_id).suggested_at

    def suggested(got: dict[str, Any], location: str) -> list[int]:
        q = next(q for q in got["questions"] if q["location"] == location)
        return [s["item_id"] for s in q["suggestions"]]

    first = ranked_at()
    assert first is not None
    got = (await rep.get(f"/api/v1/rfps/{rfp_id}")).json()
    assert ranked_at() == first  # read from what intake ranked
    assert not suggested(got, "docx:t:1:r:0:c:1")  # "Company Name:": nothing in the library
    company = await create(rep, title="Company name", body="Acme Corporation, Inc.",
                           tags=["company"])
    got = (await rep.get(f"/api/v1/rfps/{rfp_id}")).json()
    assert suggested(got, "docx:t:1:r:0:c:1") == [company]
    later = ranked_at()
    assert later is not None and later != first
    await rep.get(f"/api/v1/rfps/{rfp_id}")
    assert ranked_at() == later


async def test_the_answer_repository_finds_approved_answers_of_finished_rfps(
        app_url: str, people: People) -> None:
    rep = await token_client(app_url, people.rep)
    finished, draft = [(await upload(rep, f"{n}.docx", ALASKA_FORMS, n)).json()
                       for n in ("Alaska IES", "Alaska draft")]
    for rfp in (finished, draft):
        qid = next(q["id"] for q in rfp["questions"] if q["location"] == "docx:t:1:r:0:c:1")
        r = await rep.put(f"/api/v1/rfps/{rfp['id']}/questions/{qid}/answer",
                          json={"text": "Acme Corporation, an Alaska-registered vendor."})
        assert r.status_code == 200, r.text
    assert (await rep.post(f"/api/v1/rfps/{finished['id']}/approve")).status_code == 200

    # Only the approved RFP's answer; every word must match, in the question or the answer.
    found = (await rep.get("/api/v1/rfps/answers", params={"q": "company alaska"})).json()
    assert [(a["rfp_id"], a["question"], a["answer"]) for a in found] == [
        (finished["id"], "Company Name:", "Acme Corporation, an Alaska-registered vendor.")]
    assert (await rep.get("/api/v1/rfps/answers", params={"q": "alaska zebra"})).json() == []
    # Many readers at once, an auditor among them: the same answer each time.
    auditor = await token_client(app_url, people.auditor)
    many = await asyncio.gather(*(c.get("/api/v1/rfps/answers", params={"q": "acme"})
                                  for c in [rep, auditor] * 6))
    assert {r.status_code for r in many} == {200}
    assert {len(r.json()) for r in many} == {1}

    # The page marks the words, and puts the answer into the library with one click.
    browser, csrf = await browser_session(app_url, people.rep)
    page = await browser.get("/rfps/answers", params={"q": "alaska"})
    assert page.status_code == 200
    assert "an <mark>Alaska</mark>-registered vendor" in page.text and "Add to library" in page.text
    qid = found[0]["question_id"]
    r = await browser.post(f"/rfps/{finished['id']}/questions/{qid}/promote",
                           headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303
    page = await browser.get("/rfps/answers", params={"q": "alaska"})
    assert "in the library" in page.text and "Add to library" not in page.text
    empty = await browser.get("/rfps/answers", params={"q": "<script>zebra"})
    assert "No answer matches" in empty.text and "<script>zebra" not in empty.text


async def test_the_upload_form_makes_the_rfp_a_step_of_a_deal(
        app_url: str, people: People, sessions: sessionmaker[Session]) -> None:
    """The form offers the open deals the user sees; the RFP takes the deal's account and a
    deal at intake moves to rfp. Someone else's deal, or a bad value, is refused at the
    field and nothing is stored."""
    rep = await token_client(app_url, people.rep)
    mine = (await rep.post("/api/v1/deals", json={"account_id": people.account_id,
                                                  "name": "Alaska <IES>"})).json()["id"]
    with sessions.begin() as s:
        other = make_user(s, "Oz Other", "rep")
        theirs = Deal(account_id=people.account_id, owner_id=other.id, name="Not yours",
                      currency="USD")
        s.add(theirs)
        s.flush()
        theirs_id = theirs.id
    client, csrf = await browser_session(app_url, people.rep)
    page = await client.get("/rfps/new", params={"deal_id": mine})
    assert f'<option value="{mine}" selected>Alaska &lt;IES&gt;' in page.text
    assert "Not yours" not in page.text
    files = {"file": ("forms.docx", ALASKA_FORMS)}
    for bad, words in ((str(theirs_id), f"no deal {theirs_id}"), ("1e3", "choose one of")):
        r = await client.post("/rfps/new", files=files,
                              data={"csrf_token": csrf, "deal_id": bad})
        assert r.status_code == 422 and words in r.text, r.text
        assert 'aria-invalid="true"' in r.text
    assert _count(sessions, Rfp) == 0
    r = await client.post("/rfps/new", files=files, data={"csrf_token": csrf,
                                                           "deal_id": str(mine)})
    assert r.status_code == 303, r.text
    with sessions() as s:
        rfp = s.scalars(select(Rfp)).one()
        assert (rfp.deal_id, rfp.account_id) == (mine, people.account_id)
        assert s.get_one(Deal, mine).stage == "rfp"
    await rep.aclose()
    await client.aclose()
