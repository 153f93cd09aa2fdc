"""The proposal builder in headless Chromium: start a proposal, pick library sections with the
search, write one, reorder (htmx), preview the PDF, submit; the reviewer finds it in the inbox
and approves; the owner downloads the final PDF. Screenshots for a person to look at (under
the test's tmp_path)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from tests.support import serve
from tests.test_proposals import POLICY
from tests.web_support import browser_login, seed_people
from web.services import library

pytestmark = pytest.mark.browser


async def test_build_preview_submit_review_final(browser: Browser, settings: Settings,
                                                 sessions: sessionmaker[Session], worker: str,
                                                 tmp_path: Path) -> None:
    people = seed_people(sessions, POLICY)
    with sessions() as s:
        rep = s.merge(people.rep)
        for title, tags, body in (
                ("Security overview", ("security",), "Encrypted at rest and in transit."),
                ("Customer story: Initech", (), "Initech cut month-end close by 40%.")):
            library.create_item(s, rep, library.ItemFields(title, body, tags, "section"))
    async with serve(settings) as url:
        page = await browser_login(browser, url, people.rep.email)
        await page.click("nav >> text=Proposals")
        await page.wait_for_selector("text=No proposals yet")
        await page.click(".empty >> text=Start a proposal")
        await page.fill("input[name=title]", "Analytics <b>platform</b>")
        await page.fill("input[name=customer_signer]", "Pat Buyer")
        await page.click("text=Create the draft")
        await page.wait_for_selector("text=No sections yet")
        for words, title in (("security", "Security overview"), ("initech", "Customer story")):
            await page.fill("input[type=search]", words)
            await page.wait_for_selector(f"#library-hits >> text={title}")
            await page.click("#library-hits button:has-text('Add')")
            await page.wait_for_selector(f"#sections >> text={title}")
        await page.fill("input[name=title] >> nth=-1", "Service levels")
        await page.fill("textarea[name=body]", "Priority-1 tickets: 4 hours.\n\n- 24/7 phone")
        await page.click("text=Add the section")
        await page.wait_for_selector("#sections >> text=Service levels")
        assert await page.input_value("textarea[name=body]") == ""  # the form is free again
        # Move "Service levels" (third) up to second.
        await page.click("[aria-label='Move 3 up']")
        await expect(page.locator("#sections .section-row").nth(1)).to_contain_text(
            "Service levels")
        assert await page.locator("h1 b").count() == 0  # escaped, shown as typed
        assert "Analytics <b>platform</b>" in await page.inner_text("h1")
        await page.screenshot(path=str(tmp_path / "proposal-builder.png"), full_page=True)
        preview = await page.request.get(url + (await page.get_attribute("#preview", "href")
                                                or ""))
        assert preview.status == 200 and (await preview.body()).startswith(b"%PDF")
        text = (await asyncio.to_thread(subprocess.run, ["pdftotext", "-", "-"],
                                        input=await preview.body(), capture_output=True,
                                        check=True)).stdout.decode()
        assert text.index("Security overview") < text.index("Service levels") \
            < text.index("Customer story")
        await page.click("#submit")
        await page.wait_for_selector("#proposal-status:has-text('In review')")
        await page.wait_for_selector("#review >> text=Security review")

        reviewer = await browser_login(browser, url, people.finance.email, width=390)
        await reviewer.wait_for_selector("text=Proposals waiting for your review")
        await reviewer.screenshot(path=str(tmp_path / "inbox-phone.png"), full_page=True)
        await reviewer.click("#proposal-reviews-title + ul a")
        await reviewer.wait_for_selector("#your-review")
        await reviewer.screenshot(path=str(tmp_path / "proposal-review-phone.png"),
                                  full_page=True)
        await reviewer.click("#your-review button[value=approve]")
        await reviewer.wait_for_selector("#review .carried, #review .s-approved")

        # Legal still has its review of the text written for the proposal.
        legal = await browser_login(browser, url, people.legal.email)
        await legal.click("#proposal-reviews-title + ul a")
        await legal.click("#your-review button[value=approve]")
        await page.reload()
        for _ in range(60):
            if await page.locator("#final-pdf").count():
                break
            await page.wait_for_timeout(500)
            await page.reload()
        final = await page.request.get(url + (await page.get_attribute("#final-pdf", "href") or ""))
        assert final.status == 200 and (await final.body()).startswith(b"%PDF")
        await page.screenshot(path=str(tmp_path / "proposal-final.png"), full_page=True)

        # It goes out as an envelope: the customer signs at the proposal's customer anchor.
        await page.click("#send-for-signature")
        await page.wait_for_selector("text=Send a document for signature")
        emails = page.locator("input[name=r_email]")
        assert await page.locator("input[name=r_name]").first.input_value() == "Pat Buyer"
        assert await page.locator("input[name=r_anchor]").first.input_value() == "customer"
        await emails.first.fill("pat@example.com")
        await page.click("button[type=submit]:has-text('Send for signature')")
        await page.wait_for_url(f"{url}/envelopes/*")
        await expect(page.locator("#envelope-status")).to_have_text("sent", timeout=60_000)
