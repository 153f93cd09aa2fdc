"""The list pages (quotes, envelopes, mail): search and paging, under parallel requests;
mail bodies with clickable links; the favicon.

The lists only read the store, so the rows are written straight into it (what the envelope
and mail use cases write), 60 to 120 at a time, and the app is served without a worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store.models import Account, Envelope, EnvelopeRecipient, OutboxMessage
from tests.support import make_quote, serve
from tests.web_support import People, browser_login, browser_session, seed_people
from web.render import linkify

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
JS_URL = "javascript:alert(document.cookie)"


@dataclass
class Lists:
    url: str
    people: People


@pytest.fixture
async def lists(settings: Settings, sessions: sessionmaker[Session]) -> AsyncIterator[Lists]:
    people = seed_people(sessions)
    with sessions.begin() as s:
        _mail(s, people)
        _envelopes(s, people)
        account = s.get(Account, people.account_id)
        assert account is not None
        for i in range(60):
            make_quote(s, people.rep, account, title=f"{'Renewal' if i % 3 else 'Expansion'} "
                                                      f"{i:02d}")
    async with serve(settings) as url:
        yield Lists(url, people)


def _mail(s: Session, people: People) -> None:
    """120 messages: the even ones to the manager, the odd ones to finance; every tenth
    subject says "Invoice"; bodies carry links, markup and a javascript: URL."""
    for i in range(120):
        to = people.manager.email if i % 2 == 0 else people.finance.email
        s.add(OutboxMessage(
            message_key=f"m{i}", to_addr=to, created_at=NOW + dt.timedelta(minutes=i),
            subject=f"{'Invoice' if i % 10 == 0 else 'Quote'} notice {i:03d}",
            body=f"Hello <b>{i}</b>.\nOpen: http://127.0.0.1/quotes/{i}.\n"
                 f"Not a link: {JS_URL}\nEnd."))


def _envelopes(s: Session, people: People) -> None:
    """60 envelopes from the rep: 40 sent, 20 completed; every fifth has a signer at
    stark.example; titles "MSA 00" … "MSA 59"."""
    for i in range(60):
        env = Envelope(workflow_id=f"envelope-list-{i}", title=f"MSA {i:02d}",
                       sender_id=people.rep.id, status="sent" if i < 40 else "completed",
                       document_name=f"msa-{i}.pdf", page_count=3, original_sha256="0" * 64,
                       current_sha256="0" * 64, created_at=NOW + dt.timedelta(minutes=i),
                       expires_at=NOW + dt.timedelta(days=30))
        domain = "stark.example" if i % 5 == 0 else "globex.example"
        env.recipients = [EnvelopeRecipient(name=f"Signer {i}", email=f"s{i}@{domain}",
                                            role="signer", routing_order=1, status="sent",
                                            sent_at=NOW)]
        s.add(env)


def _count(html: str) -> str:
    found = re.search(r'<p class="list-count"[^>]*>(.*?)</p>', html, re.S)
    assert found, html[:500]
    return " ".join(found.group(1).split())


def _titles(html: str, pattern: str) -> list[str]:
    return re.findall(pattern, html)


async def test_mail_is_searched_and_paged(lists: Lists) -> None:
    admin, _ = await browser_session(lists.url, lists.people.admin)
    first = (await admin.get("/dev/mail")).text
    assert _count(first) == "1–50 of 120 messages"
    subjects = _titles(first, r"<strong>(\w+ notice \d+)</strong>")
    assert subjects[0] == "Quote notice 119" and len(subjects) == 50  # newest first
    last = (await admin.get("/dev/mail", params={"page": 3})).text
    assert _count(last) == "101–120 of 120 messages"
    assert 'rel="prev"' in last and 'rel="next"' not in last
    assert _titles(last, r"<strong>(\w+ notice \d+)</strong>")[-1] == "Invoice notice 000"
    # Past the end shows the last page; search ignores case and keeps paging's query.
    assert _count((await admin.get("/dev/mail", params={"page": 9})).text).startswith("101–")
    found = (await admin.get("/dev/mail", params={"q": "INVOICE"})).text
    assert _count(found) == "12 messages matching “INVOICE”"
    by_to = (await admin.get("/dev/mail", params={"q": lists.people.finance.email})).text
    assert _count(by_to) == f"1–50 of 60 messages matching “{lists.people.finance.email}”"
    assert f"q={lists.people.finance.email.replace('@', '%40')}&amp;page=2" in by_to
    none = (await admin.get("/dev/mail", params={"q": "100%"})).text  # % matches itself
    assert "No mail matches “100%”" in none
    # Anyone else sees only their own mail, searched the same way.
    manager, _ = await browser_session(lists.url, lists.people.manager)
    assert _count((await manager.get("/dev/mail")).text) == "1–50 of 60 messages"
    assert _count((await manager.get("/dev/mail", params={"q": "invoice"})).text) \
        == "12 messages matching “invoice”"
    # htmx asks for the list alone.
    part = await manager.get("/dev/mail", params={"q": "invoice"}, headers={"HX-Request": "true"})
    assert part.text.lstrip().startswith('<p class="list-count"') and "<html" not in part.text
    await asyncio.gather(admin.aclose(), manager.aclose())


async def test_envelopes_are_searched_and_paged(lists: Lists) -> None:
    rep, _ = await browser_session(lists.url, lists.people.rep)
    page1 = (await rep.get("/envelopes")).text
    assert _count(page1) == "1–50 of 60 envelopes"
    assert _titles(page1, r">(MSA \d\d)</a>")[:2] == ["MSA 59", "MSA 58"]
    page2 = (await rep.get("/envelopes", params={"page": 2})).text
    assert _titles(page2, r">(MSA \d\d)</a>") == [f"MSA {i:02d}" for i in range(9, -1, -1)]
    # A recipient's email domain, in any case; with a view, both apply.
    stark = (await rep.get("/envelopes", params={"q": "STARK.example"})).text
    assert _count(stark) == "12 envelopes matching “STARK.example”"
    waiting = (await rep.get("/envelopes", params={"q": "stark.example", "view": "waiting"})).text
    assert _count(waiting) == "8 envelopes matching “stark.example”"
    assert (_count((await rep.get("/envelopes", params={"q": "msa 4"})).text)
            == "10 envelopes matching “msa 4”")  # MSA 40–49, not MSA 04
    assert "No envelope matches “nobody”" in (await rep.get("/envelopes",
                                                             params={"q": "nobody"})).text
    # Someone who may see none of them gets the same page, empty.
    manager, _ = await browser_session(lists.url, lists.people.manager)
    assert "No envelopes yet" in (await manager.get("/envelopes")).text
    await asyncio.gather(rep.aclose(), manager.aclose())


async def test_quotes_are_searched_and_paged(lists: Lists) -> None:
    rep, _ = await browser_session(lists.url, lists.people.rep)
    assert _count((await rep.get("/quotes")).text) == "1–50 of 60 quotes"
    assert _count((await rep.get("/quotes", params={"q": "expansion"})).text) \
        == "20 quotes matching “expansion”"
    assert _count((await rep.get("/quotes", params={"q": "expansion", "status": "draft"})).text) \
        == "20 quotes matching “expansion”"
    won = (await rep.get("/quotes", params={"status": "won"})).text
    assert "No quote you can see is won" in won
    bad = await rep.get("/quotes", params={"page": 0})
    assert bad.status_code == 422 and "page" in bad.text
    await rep.aclose()


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql",
                                                           marks=pytest.mark.postgres)])
async def test_list_pages_under_parallel_requests(lists: Lists, store: str) -> None:
    """20 page requests at once on one app (searches and pages of all three lists): every
    one answers, none with a 5xx, each with its own right count; on both stores."""
    admin, _ = await browser_session(lists.url, lists.people.admin)
    asks: list[tuple[str, dict[str, str | int], str]] = [
        ("/dev/mail", {"q": "invoice"}, "12 messages matching “invoice”"),
        ("/dev/mail", {"page": 3}, "101–120 of 120 messages"),
        ("/envelopes", {"q": "stark.example"}, "12 envelopes matching “stark.example”"),
        ("/envelopes", {"page": 2}, "51–60 of 60 envelopes"),
        ("/quotes", {"q": "renewal", "page": 1}, "40 quotes matching “renewal”")] * 4
    started = time.perf_counter()
    answers = await asyncio.gather(*(admin.get(path, params=params) for path, params, _ in asks))
    elapsed = time.perf_counter() - started
    assert [r.status_code for r in answers] == [200] * len(asks)
    assert [_count(r.text) for r in answers] == [want for _, _, want in asks]
    assert elapsed < 30, f"20 list pages took {elapsed:.1f}s"
    await admin.aclose()


@pytest.mark.browser
async def test_mail_links_are_clickable_and_javascript_urls_are_not(
        lists: Lists, browser: Browser) -> None:
    page = await browser_login(browser, lists.url, lists.people.manager.email)
    await page.goto(f"{lists.url}/dev/mail?q=notice+118")
    body = page.locator(".mail-body").first
    link = body.get_by_role("link", name="http://127.0.0.1/quotes/118")
    await expect(link).to_have_attribute("href", "http://127.0.0.1/quotes/118")
    await expect(link).to_have_attribute("rel", "noopener")
    await expect(body.locator("a")).to_have_count(1)  # not the javascript: one
    await expect(body).to_contain_text(f"Not a link: {JS_URL}")
    await expect(body).to_contain_text("Hello <b>118</b>.")  # markup shown, not obeyed
    lines = await body.evaluate("el => el.innerText.split('\\n').length")
    assert lines == 4  # the line breaks stay
    # Searching from the box swaps the list in place and keeps the query in the URL.
    await page.fill("form.search input[type=search]", "invoice")
    await expect(page.locator(".list-count")).to_have_text("12 messages matching “invoice”")
    assert "q=invoice" in page.url
    # The link is a real one: following it leaves the mail page (for a stand-in page).
    await page.route("http://127.0.0.1/quotes/118", lambda route: route.fulfill(
        body="followed", content_type="text/plain"))
    await page.goto(f"{lists.url}/dev/mail?q=notice+118")
    await page.locator(".mail-body a").first.click()
    await page.wait_for_url("http://127.0.0.1/quotes/118")


def test_linkify_escapes_first_and_links_only_http() -> None:
    html = str(linkify('Go to https://x.test/a?b=1&c=2. Or "javascript:alert(1)" '
                       "<script>x</script> or data:text/html,hi or http://h/sign/…\nok"))
    assert html == (
        'Go to <a href="https://x.test/a?b=1&amp;c=2" rel="noopener">https://x.test/a?b=1&amp;'
        'c=2</a>. Or &#34;javascript:alert(1)&#34; &lt;script&gt;x&lt;/script&gt; or '
        "data:text/html,hi or http://h/sign/…\nok")
    assert str(linkify("(see http://a.test/x)")) == \
        '(see <a href="http://a.test/x" rel="noopener">http://a.test/x</a>)'
    assert str(linkify('http://a.test/"onmouseover=alert(1)')) == \
        '<a href="http://a.test/" rel="noopener">http://a.test/</a>&#34;onmouseover=alert(1)'


async def test_the_favicon_is_served(settings: Settings) -> None:
    async with serve(settings) as url, httpx.AsyncClient(base_url=url) as anon:
        ico = await anon.get("/favicon.ico")
        assert ico.status_code == 200 and ico.headers["content-type"] == "image/x-icon"
        assert ico.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
        svg = await anon.get("/static/favicon.svg")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg")
        login = await anon.get("/login")
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in login.text
