"""The inbox in headless Chromium (Debian's, driven by Playwright): log in, approve from the
inbox without a reload, and watch the task move to the next approver's inbox."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.support import eventually
from tests.web_support import People, browser_login, quote_body, seed_people, token_client

pytestmark = pytest.mark.browser


async def test_approve_from_inbox_moves_task_to_next_queue(
        live_url: str, sessions: sessionmaker[Session], browser: Browser) -> None:
    people: People = seed_people(sessions)
    rep = await token_client(live_url, people.rep)
    titles = ["Browser deal one", "Browser deal two"]
    for title in titles:
        qid = (await rep.post("/api/v1/quotes", json=quote_body(
            people.account_id, title=title))).json()["id"]
        assert (await rep.post(f"/api/v1/quotes/{qid}/submit")).status_code == 202
    await rep.aclose()

    manager = await browser_login(browser, live_url, people.manager.email)
    rows = manager.locator("#inbox-table tr.task:not(.done)")
    await eventually(lambda: _reload_until(manager, rows, 2), timeout=30)
    await expect(manager.locator("#badge .badge")).to_have_text("2")

    # Click Approve on the first row: the row turns into a confirmation, no page load.
    first = rows.filter(has_text=titles[0])
    await first.get_by_role("button", name="Approve").click()
    done = manager.locator("tr.task.done")
    await expect(done).to_contain_text("Approved")
    await expect(done).to_contain_text("the quote moves on to Finance")
    await expect(rows).to_have_count(1)
    await expect(manager.locator("#badge .badge")).to_have_text("1")

    # Keyboard: j selects the remaining row, a approves it.
    await manager.keyboard.press("j")
    await manager.keyboard.press("a")
    await expect(rows).to_have_count(0)

    finance = await browser_login(browser, live_url, people.finance.email)
    frows = finance.locator("#inbox-table tr.task")
    await eventually(lambda: _reload_until(finance, frows, 2), timeout=30)
    await expect(finance.locator("#inbox-table")).to_contain_text(titles[0])
    await expect(finance.locator("#inbox-table")).to_contain_text("Finance")
    # Finance rejects from the task page: without a comment the refusal names the problem,
    # with one the panel shows the decision at once and the error goes away.
    await finance.locator("#inbox-table a", has_text=titles[0]).click()
    await finance.wait_for_url(f"{live_url}/tasks/**")
    await finance.locator("button[value=reject]").click()
    await expect(finance.locator("#flash")).to_contain_text("a comment is required to reject")
    await finance.fill("textarea[name=comment]", "Payment terms need finance review")
    await finance.locator("button[value=reject]").click()
    await expect(finance.locator("#panel")).to_contain_text("You rejected this task.")
    await expect(finance.locator("#panel .state")).to_have_text("rejected")
    await expect(finance.locator("#flash")).to_be_empty()

    # And once the store has both decisions, the manager's inbox shows its empty state.
    await eventually(lambda: _reload_until(manager, rows, 0), timeout=30)
    await expect(manager.get_by_text("Nothing waiting for you")).to_be_visible()


async def _reload_until(page: Page, rows: object, count: int) -> bool:
    await page.reload()
    return await rows.count() == count  # type: ignore[attr-defined, no-any-return]
