"""The RFP workspace in headless Chromium: upload a customer's Word form, use a library
suggestion for an answer (htmx save), approve, download the form with the answer in place;
screenshots for a person to look at (under the test's tmp_path)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import docx
import pytest
from playwright.async_api import Browser
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store.library import LibraryItem
from tests.support import serve
from tests.test_rfp_files import FIXTURES
from tests.web_support import browser_login, seed_people
from web.services import library

pytestmark = pytest.mark.browser
FORMS = FIXTURES / "alaska_ies_m2_submittal_forms_A-H_EARLIER_DRAFT.docx"


async def test_rfp_upload_answer_approve_download(browser: Browser, settings: Settings,
                                                  sessions: sessionmaker[Session],
                                                  tmp_path: Path) -> None:
    people = seed_people(sessions)
    with sessions() as s:
        rep = s.merge(people.rep)
        library.create_item(s, rep, library.ItemFields(
            "Company name", "Acme Corporation", ("company",)))
    async with serve(settings) as url:
        page = await browser_login(browser, url, people.rep.email)
        await page.click("nav >> text=RFPs")
        await page.wait_for_url(f"{url}/rfps")
        await page.wait_for_selector("text=No RFPs yet")
        await page.screenshot(path=str(tmp_path / "rfps-empty.png"), full_page=True)
        await page.click(".empty >> text=Upload an RFP")
        await page.set_input_files("input[name=file]", str(FORMS))
        await page.fill("input[name=title]", "Alaska IES submittal forms")
        await page.click("text=Upload and read the questions")
        await page.wait_for_selector("#questions .rfp-question")
        question = page.locator(".rfp-question", has_text="Company Name:").first
        await question.locator("[data-use]").first.click()
        assert await question.locator("textarea").input_value() == "Acme Corporation"
        # Keyboard: j moves the cursor between questions.
        await page.locator("body").click(position={"x": 5, "y": 5})
        await page.keyboard.press("j")
        await page.wait_for_selector(".rfp-question.cursor")
        await question.locator("text=Save").click()
        await page.wait_for_selector(".rfp-question:has-text('Company Name:') .saved")
        assert "1 of" in await page.inner_text("#progress")
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(tmp_path / "rfp-workspace.png"), full_page=False)
        await page.click("#approve")
        await page.wait_for_selector("text=Answers approved.")
        async with page.expect_download() as info:
            await page.click("#download-document")
        download = await info.value
        saved = tmp_path / "answered.docx"
        await download.save_as(saved)
        data = await asyncio.to_thread(saved.read_bytes)
        assert download.suggested_filename.endswith("(answered).docx")
        cell = docx.Document(io.BytesIO(data)).tables[1].rows[0].cells[1]
        assert cell.text == "Acme Corporation"
        with sessions() as s:
            used = s.scalar(select(LibraryItem.usage_count).where(
                LibraryItem.title == "Company name"))
            assert used == 1  # the suggestion used counts as a use of the item
        await page.goto(f"{url}/rfps")
        await page.wait_for_selector("text=Alaska IES submittal forms")
        await page.screenshot(path=str(tmp_path / "rfps.png"), full_page=True)
        await page.context.close()
