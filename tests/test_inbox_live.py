"""The inbox stays true while it is open (headless Chromium, the real app, worker and
Temporal): counts follow each decision, a task someone else decided stops offering Approve,
new tasks appear without a reload and what the person was doing survives it, and the
confirmation says what really happened. Plus the poll under parallel requests."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.support import eventually
from tests.web_support import (
    People,
    browser_login,
    browser_session,
    quote_body,
    seed_people,
    token_client,
)

pytestmark = pytest.mark.browser


async def submit(url: str, people: People, *titles: str) -> None:
    rep = await token_client(url, people.rep)
    for title in titles:
        r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id, title=title))
        assert (await rep.post(f"/api/v1/quotes/{r.json()['id']}/submit")).status_code == 202
    await rep.aclose()


async def inbox_with(page: Page, count: int) -> None:
    """Reload until the store shows ``count`` open rows (the chains project a moment after
    the submission)."""
    rows = page.locator("#inbox-table tr.task:not(.done)")

    async def shown() -> bool:
        await page.reload()
        return await rows.count() == count
    await eventually(shown, timeout=30)


async def row_of(page: Page, title: str) -> Locator:
    task_id = await page.locator("tr.task", has_text=title).get_attribute("data-task")
    return page.locator(f'tr.task[data-task="{task_id}"]')


async def test_open_inbox_keeps_counts_and_rows_true(
        live_url: str, sessions: sessionmaker[Session], browser: Browser) -> None:
    people = seed_people(sessions)
    await submit(live_url, people, "Alpha deal", "Bravo deal", "Charlie deal")
    page = await browser_login(browser, live_url, people.manager.email)
    await inbox_with(page, 3)
    heading, badge = page.locator("#inbox-count .badge"), page.locator("#badge .badge")
    await expect(heading).to_have_text("3")
    await expect(badge).to_have_text("3")

    # Approving counts down in the heading and the badge, and says what comes next.
    alpha = await row_of(page, "Alpha deal")  # by task id: the confirmation has no title
    await alpha.get_by_role("button", name="Approve", exact=True).click()
    await expect(alpha).to_contain_text("Approved — the quote moves on to Finance.")
    await expect(heading).to_have_text("2")
    await expect(badge).to_have_text("2")

    # Mia approves Bravo meanwhile; the page has not polled yet (held back here), so it
    # still offers Approve. Clicking it turns the row read-only, naming who decided.
    await page.route("**/inbox/rows*", lambda route: route.abort())
    bravo = await row_of(page, "Bravo deal")
    task_id = await bravo.get_attribute("data-task")
    mia = await token_client(live_url, people.manager2)
    r = await mia.post(f"/api/v1/tasks/{task_id}/decision", json={"decision": "approve"})
    assert r.status_code == 200, r.text
    await mia.aclose()
    await bravo.get_by_role("button", name="Approve", exact=True).click()
    closed = page.locator("tr.task.closed")
    await expect(closed).to_contain_text(f"Already approved by {people.manager2.name}.")
    await expect(closed.get_by_role("button")).to_have_count(0)
    await expect(heading).to_have_text("1")
    await expect(badge).to_have_text("1")
    await page.unroute("**/inbox/rows*")

    # Charlie is ticked and has the j/k cursor when a new task arrives: it appears without a
    # reload, the counts follow, and the tick, the cursor and the confirmations stay.
    await page.locator("h1").click()
    await page.keyboard.press("j")
    await page.keyboard.press("x")
    await expect(page.locator("#selected-count")).to_have_text("1 selected")
    await submit(live_url, people, "Delta deal")
    await expect(page.locator("tr.task", has_text="Delta deal")).to_be_visible(timeout=30_000)
    await expect(heading).to_have_text("2")
    await expect(badge).to_have_text("2")
    charlie = await row_of(page, "Charlie deal")
    await expect(charlie.locator("input[name=task_ids]")).to_be_checked()
    await expect(charlie).to_have_class(re.compile(r"\bcursor\b"))
    await expect(page.locator("#selected-count")).to_have_text("1 selected")
    await expect(alpha).to_contain_text("moves on to Finance")
    await expect(closed).to_be_visible()
    # The cursor still drives the keys: a approves Charlie.
    await page.keyboard.press("a")
    await expect(charlie).to_contain_text("Approved")
    await expect(heading).to_have_text("1")


async def test_last_step_says_the_quote_is_approved(
        live_url: str, sessions: sessionmaker[Session], browser: Browser) -> None:
    people = seed_people(sessions)
    await submit(live_url, people, "Echo deal")
    manager = await browser_login(browser, live_url, people.manager.email)
    await inbox_with(manager, 1)
    await manager.get_by_role("button", name="Approve", exact=True).click()
    await expect(manager.locator("tr.task.done")).to_contain_text("moves on to Finance")

    finance = await browser_login(browser, live_url, people.finance.email)
    await inbox_with(finance, 1)
    await finance.get_by_role("button", name="Approve", exact=True).click()
    done = finance.locator("tr.task.done")
    await expect(done).to_contain_text("Approved — the quote is approved. Its owner is told.")
    await expect(finance.locator("#inbox-count .badge")).to_have_count(0)
    rep, _ = await browser_session(live_url, people.rep)
    await eventually(lambda: _quote_status(rep, "Echo deal", "approved"), timeout=30)
    await rep.aclose()


async def _quote_status(client: httpx.AsyncClient, title: str, status: str) -> bool:
    page = await client.get("/quotes", params={"q": title})
    return f"s-{status}" in page.text


async def test_inbox_poll_under_parallel_requests(
        live_url: str, sessions: sessionmaker[Session]) -> None:
    """20 polls at once from one approver: all answer; those that show what the store holds
    get 204, the others the rows with the right count out of band."""
    people = seed_people(sessions)
    await submit(live_url, people, "Foxtrot deal", "Golf deal")
    web, _ = await browser_session(live_url, people.manager)

    async def page_rows() -> list[str]:
        rows = re.findall(r'name="shown" value="([^"]+)"', (await web.get("/inbox")).text)
        assert len(rows) == 2
        return rows
    shown = await eventually(page_rows, timeout=30)
    current = {"shown": shown, "shown_count": 2}
    stale = {"shown": shown[:1], "shown_count": 1}
    hx = {"HX-Request": "true"}
    answers = await asyncio.gather(*(
        web.get("/inbox/rows", params=current if i % 2 else stale, headers=hx)
        for i in range(20)))
    assert [r.status_code for r in answers] == [204 if i % 2 else 200 for i in range(20)]
    for r in answers[::2]:
        assert r.text.count('name="shown"') == 2
        assert re.search(r'id="inbox-count" hx-swap-oob="innerHTML">.*value="2"', r.text, re.S)
    await web.aclose()
