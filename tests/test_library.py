"""The content library: versions and audit, search and highlighting, roles, refusals,
reviews due, suggestions, and parallel use of one app (SQLite; tests/test_library_pg.py runs
the search scenario on PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store import audit
from store.library import LibraryItem, LibraryItemVersion, segments
from store.models import AuditEvent, OutboxMessage
from tests.library_support import bench_items, create, search_scenario
from tests.support import serve
from tests.web_support import People, browser_session, seed_people, token_client
from web.services import library


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


def test_segments_cut_marked_text() -> None:
    assert segments("a \x02b\x03 c\x02d\x03") == [("a ", False), ("b", True), (" c", False),
                                                  ("d", True)]
    assert segments("plain") == [("plain", False)]


async def test_create_edit_keeps_versions_and_audits(app_url: str, people: People,
                                                     sessions: sessionmaker[Session]) -> None:
    rep = await token_client(app_url, people.rep)
    item = await create(rep, title="Uptime", body="99.5% monthly", tags=["SLA", "sla "])
    r = await rep.put(f"/api/v1/library/items/{item}",
                      json={"title": "Uptime commitment", "body": "99.9% monthly",
                            "tags": ["sla"], "base_version": 1})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["version"] == 2 and got["tags"] == ["sla"]
    assert [(v["version"], v["body"]) for v in got["versions"]] == [
        (2, "99.9% monthly"), (1, "99.5% monthly")]
    # An edit from a stale version is refused, naming it; nothing changes.
    r = await rep.put(f"/api/v1/library/items/{item}",
                      json={"title": "Lost", "body": "x", "base_version": 1})
    assert r.status_code == 409 and r.json()["field"] == "version"
    # Search sees the new text only.
    assert [h["id"] for h in (await rep.get("/api/v1/library/search",
                                            params={"q": "99.9"})).json()] == [item]
    assert (await rep.get("/api/v1/library/search", params={"q": "99.5"})).json() == []
    with sessions() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(
            audit.entity_clause(f"library-item:{item}")).order_by(AuditEvent.id)))
        assert actions == ["library_item.created", "library_item.updated"]
        assert audit.verify(s).ok
    # Archived: out of search, still readable.
    assert (await rep.delete(f"/api/v1/library/items/{item}")).status_code == 204
    assert (await rep.get("/api/v1/library/search", params={"q": "uptime"})).json() == []
    assert (await rep.get(f"/api/v1/library/items/{item}")).json()["archived"] is True
    await rep.aclose()


async def test_search_ranks_highlights_and_escapes(app_url: str, people: People) -> None:
    rep = await token_client(app_url, people.rep)
    await search_scenario(rep)
    await rep.aclose()


async def test_roles(app_url: str, people: People, sessions: sessionmaker[Session]) -> None:
    rep = await token_client(app_url, people.rep)
    item = await create(rep, title="Support hours", body="8 to 8")
    auditor = await token_client(app_url, people.auditor)
    r = await auditor.post("/api/v1/library/items", json={"title": "Mine", "body": "x"})
    assert r.status_code == 403
    assert (await auditor.get(f"/api/v1/library/items/{item}")).status_code == 200
    assert (await auditor.get("/api/v1/library/search", params={"q": "support"})).json()
    with sessions.begin() as s:
        from tests.support import make_user
        other = make_user(s, "Ola Other", "rep")
        s.expunge_all()
    other_rep = await token_client(app_url, other)
    r = await other_rep.put(f"/api/v1/library/items/{item}", json={"title": "Mine now"})
    assert r.status_code == 403 and "owner" in r.json()["detail"]
    assert (await other_rep.delete(f"/api/v1/library/items/{item}")).status_code == 403
    legal = await token_client(app_url, people.legal)  # a curator edits anyone's item
    r = await legal.put(f"/api/v1/library/items/{item}",
                        json={"title": "Support hours", "body": "8:00 to 20:00"})
    assert r.status_code == 200 and r.json()["version"] == 2
    finance = await token_client(app_url, people.finance)  # reads, doesn't write
    assert (await finance.post("/api/v1/library/items", json={"title": "F"})).status_code == 403
    for c in (rep, auditor, other_rep, legal, finance):
        await c.aclose()


@pytest.mark.parametrize(("body", "field"), [
    ({"title": "   "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "ok", "body": "y" * 20_001}, "body"),
    ({"title": "ok", "tags": [f"t{i}" for i in range(13)]}, "tags"),
    ({"title": "ok", "tags": ["t" * 41]}, "tags"),
    ({"title": "ok", "tags": ["<b>"]}, "tags"),
    ({"title": "a\u0000b"}, "title"),
    ({"title": "ok", "body": "bell\u0007"}, "body"),
    ({"title": "ok", "kind": "poem"}, "kind"),
    ({"title": "ok", "review_by": "2000-01-01"}, "review_by"),
])
async def test_bad_input_names_the_field_and_writes_nothing(
        app_url: str, people: People, sessions: sessionmaker[Session],
        body: dict[str, object], field: str) -> None:
    rep = await token_client(app_url, people.rep)
    r = await rep.post("/api/v1/library/items", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field, r.json()
    assert _count(sessions, LibraryItem) == 0 and _count(sessions, LibraryItemVersion) == 0
    await rep.aclose()


async def test_form_shows_the_problem_at_the_field(app_url: str, people: People,
                                                   sessions: sessionmaker[Session]) -> None:
    client, csrf = await browser_session(app_url, people.rep)
    r = await client.post("/library/new", data={"csrf_token": csrf, "title": "ok",
                                                "tags": "a, " + "b" * 41, "body": "text"})
    assert r.status_code == 422
    assert 'id="err-tags">tag' in r.text and 'aria-invalid="true"' in r.text
    assert 'value="ok"' in r.text  # kept as typed
    r = await client.post("/library/new", data={"title": "No token"})
    assert r.status_code == 403
    assert _count(sessions, LibraryItem) == 0
    r = await client.post("/library/new", data={"csrf_token": csrf, "title": "Good",
                                                "tags": "a, b", "body": "text"})
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert "Good" in page.text and "Versions" in page.text
    await client.aclose()


async def test_review_due_reaches_the_owner_once(app_url: str, people: People,
                                                 sessions: sessionmaker[Session]) -> None:
    rep = await token_client(app_url, people.rep)
    item = await create(rep, title="Pen test summary", body="Yearly, by an outside firm.")
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    with sessions.begin() as s:
        s.execute(update(LibraryItem).where(LibraryItem.id == item)
                  .values(review_by=yesterday))
    with sessions() as s:
        assert library.queue_review_notices(s, "http://app") == 1
    with sessions() as s:
        assert library.queue_review_notices(s, "http://app") == 0
        mails = list(s.scalars(select(OutboxMessage)))
        assert [m.to_addr for m in mails] == [people.rep.email]
        assert f"http://app/library/{item}" in mails[0].body
    owner, csrf = await browser_session(app_url, people.rep)
    inbox = await owner.get("/inbox")
    assert "Library reviews due" in inbox.text and "Pen test summary" in inbox.text
    other, _ = await browser_session(app_url, people.manager)
    assert "Pen test summary" not in (await other.get("/inbox")).text
    r = await owner.post(f"/library/{item}/reviewed", data={"csrf_token": csrf,
                                                            "back": "inbox"})
    assert r.status_code == 303 and r.headers["location"] == "/inbox"
    assert "Pen test summary" not in (await owner.get("/inbox")).text
    got = (await rep.get(f"/api/v1/library/items/{item}")).json()
    assert got["due_for_review"] is False
    for c in (rep, owner, other):
        await c.aclose()


async def test_suggestions_rank_the_answer_first(app_url: str, people: People) -> None:
    rep = await token_client(app_url, people.rep)
    ids = {}
    for it in bench_items():
        ids[it["key"]] = await create(rep, title=it["title"], body=it["body"], tags=it["tags"])
    for question, key in [
        ("Is two-factor authentication available for all accounts?", "mfa"),
        ("Can our data be kept within the European Union?", "data-residency"),
        ("What are your RTO and RPO?", "dr-bcp"),
        ("Will you sign a DPA with standard contractual clauses?", "gdpr"),
        ("Please provide the results of your most recent pen test.", "pen-test"),
    ]:
        r = await rep.get("/api/v1/library/suggest", params={"q": question})
        assert r.status_code == 200, r.text
        got = r.json()
        assert got and got[0]["item_id"] == ids[key], (question, got[:3])
        assert 0 < got[0]["score"] <= 1 and got[0]["text"]
    assert (await rep.get("/api/v1/library/suggest", params={"q": "the of and"})).json() == []
    r = await rep.post(f"/api/v1/library/items/{ids['mfa']}/used")
    assert r.json() == {"usage_count": 1}
    await rep.aclose()


async def test_parallel_creates_edits_and_searches(app_url: str, people: People,
                                                   sessions: sessionmaker[Session]) -> None:
    rep = await token_client(app_url, people.rep)
    legal = await token_client(app_url, people.legal)
    shared = await create(rep, title="Shared answer", body="version one")

    async def job(n: int) -> httpx.Response:
        if n % 3 == 0:
            return await rep.post("/api/v1/library/items",
                                  json={"title": f"Item {n}", "body": f"parallel body {n}"})
        if n % 3 == 1:
            return await legal.put(f"/api/v1/library/items/{shared}",
                                   json={"title": "Shared answer", "body": f"edit {n}"})
        return await rep.get("/api/v1/library/search", params={"q": "parallel"})

    answers = await asyncio.gather(*(job(n) for n in range(20)))
    assert all(r.status_code < 500 for r in answers), [r.text for r in answers
                                                       if r.status_code >= 500]
    assert all(r.status_code in (200, 201) for r in answers)
    got = (await rep.get(f"/api/v1/library/items/{shared}")).json()
    assert got["version"] == 1 + 7  # n % 3 == 1 for 7 of 0…19, each a different body
    assert [v["version"] for v in got["versions"]] == list(range(got["version"], 0, -1))
    with sessions() as s:
        assert audit.verify(s).ok
    for c in (rep, legal):
        await c.aclose()
