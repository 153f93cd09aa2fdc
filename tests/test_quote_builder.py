"""The quote builder in headless Chromium: configure a bundle nested three levels deep with
the rules answering inline, add it, and find its bill of materials in the quote PDF."""

from __future__ import annotations

import asyncio
import re
import subprocess

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.cpq_support import Cast, cast
from tests.web_support import browser_login

pytestmark = pytest.mark.browser
__all__ = ["cast"]


async def test_configure_in_the_builder_and_the_bom_reaches_the_quote_pdf(
        live_url: str, sessions: sessionmaker[Session], cast: Cast, browser: Browser) -> None:
    page = await browser_login(browser, live_url, cast.rep.email)
    await page.goto(f"{live_url}/quotes/new")
    await page.fill("input[name=title]", "Engineering fleet")
    await page.select_option("select[name=account_id]", label="Initech")
    await page.click("form.form button.primary")
    await page.wait_for_url("**/build")

    await page.get_by_role("button", name="WS-9 Engineering Workstation").click()
    panel = page.locator("form.configurator")
    # The body has no CPU yet: the rule says so and adding is blocked.
    await expect(panel.locator(".finding.bad")).to_contain_text("The body needs a CPU")
    await expect(panel.get_by_role("button", name="Add to quote")).to_be_disabled()
    await panel.locator("input[name='o:WS-BODY/CPU-32']").fill("1")
    await panel.locator("input[name='o:WS-BODY/CPU-32']").press("Tab")
    await expect(panel.locator(".finding.bad")).to_have_count(0)
    # A selection rule answers a Pro GPU by raising the memory to 4 × 64 GB.
    await panel.locator("input[name='o:WS-BODY/GPU-PRO']").fill("1")
    await panel.locator("input[name='o:WS-BODY/GPU-PRO']").press("Tab")
    await expect(panel.locator(".finding.info")).to_contain_text("memory set to 4 × 64 GB")
    await expect(panel.locator("input[name='o:WS-BODY/RAM-64']")).to_have_value("4")
    await panel.locator("input[name=qty]").fill("3")
    await panel.locator("input[name=qty]").press("Tab")
    await expect(panel.locator("tfoot")).to_contain_text("USD")
    await panel.get_by_role("button", name="Add to quote").click()

    lines = page.locator("table.lines")
    await expect(lines).to_contain_text("WS-9 Engineering Workstation")
    await lines.locator("summary").click()
    await expect(lines.locator("ul.bom")).to_contain_text("Fan 120 mm")

    # A second line is appended in place, and the totals follow (out of band).
    before = await page.locator("#totals").inner_text()
    await page.get_by_role("button", name="Analytics hub").click()
    await page.locator("form.configurator").get_by_role("button", name="Add to quote").click()
    await expect(page.locator("table.lines tbody.item")).to_have_count(2)
    await expect(page.locator("#totals")).not_to_have_text(before)
    await expect(page.locator("#panel")).to_contain_text("Added line 2")

    await page.get_by_role("link", name="Done").click()
    await page.get_by_role("button", name="Generate quote document").click()
    await expect(page.get_by_role("link", name="PDF")).to_be_visible(timeout=60_000)

    quote_id = int(page.url.split("/quotes/")[1].split("#")[0].split("/")[0])
    data = bytes(await page.evaluate(  # downloaded with the browser's own session
        "async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()))",
        f"/quotes/{quote_id}/document.pdf"))
    text = await pdf_text(data)
    for sku in ("WS-9", "WS-BODY", "CPU-32", "GPU-PRO", "WS-PSU", "WS-FAN"):
        assert sku in text, sku
    # The BoM row: level 3, 3 workstations × 1 PSU × 2 fans.
    assert re.search(r"^\s*3\s+WS-FAN\s+Fan 120 mm\s+6\s*$", text, re.M), text


async def pdf_text(pdf: bytes) -> str:
    done = await asyncio.to_thread(subprocess.run, ["pdftotext", "-layout", "-", "-"],
                                   input=pdf, capture_output=True, check=True)
    return str(done.stdout.decode())
