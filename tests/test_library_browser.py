"""The library pages in headless Chromium: live search swaps highlighted results in, the
nav links it, and screenshots for a person to look at (under the test's tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from tests.library_support import bench_items
from tests.support import serve
from tests.web_support import browser_login, seed_people
from web.services import library

pytestmark = pytest.mark.browser


async def test_library_search_in_the_browser(browser: Browser, settings: Settings,
                                             sessions: sessionmaker[Session],
                                             tmp_path: Path) -> None:
    people = seed_people(sessions)
    with sessions() as s:
        rep = s.merge(people.rep)
        for it in bench_items()[:30]:
            library.create_item(s, rep, library.ItemFields(
                it["title"], it["body"], tuple(it["tags"]), it["kind"]))
    async with serve(settings) as url:
        page = await browser_login(browser, url, people.rep.email)
        await page.click("nav >> text=Library")
        await page.wait_for_url(f"{url}/library")
        await page.screenshot(path=str(tmp_path / "library.png"), full_page=True)
        await page.fill("input[name=q]", "encrypt")
        await page.wait_for_selector(".library-hits mark")
        assert "encrypt" in (await page.inner_text(".library-hits li >> nth=0")).lower()
        await page.screenshot(path=str(tmp_path / "library-search.png"), full_page=True)
        await page.click(".library-hits li >> nth=0 >> a")
        await page.wait_for_selector("text=Versions")
        await page.click("text=I used this")
        await page.wait_for_selector("text=Used 1×")
        await page.screenshot(path=str(tmp_path / "library-item.png"), full_page=True)
        await page.goto(f"{url}/library/new")
        await page.fill("input[name=title]", "x")
        await page.fill("input[name=tags]", "a, " + "b" * 41)
        await page.click("text=Create")
        await page.wait_for_selector("#err-tags:not([hidden])")
        await page.screenshot(path=str(tmp_path / "library-form.png"), full_page=True)
        await page.context.close()
