"""The quote builder's fields in headless Chromium: a problem shows at its field and clears
when fixed, Add is disabled meanwhile, and a partner channel's tier can be chosen and
reaches partner prices. The server says the same at the field when a request gets past the
browser; and parallel configuration previews each answer for themselves."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Browser, Locator, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.cpq_support import Cast, cast
from tests.web_support import browser_login, browser_session

pytestmark = pytest.mark.browser
__all__ = ["cast"]


async def new_quote(page: Page, base: str, title: str) -> int:
    await page.goto(f"{base}/quotes/new")
    await page.fill("input[name=title]", title)
    await page.select_option("select[name=account_id]", label="Initech")
    await page.click("form.form button.primary")
    await page.wait_for_url("**/build")
    return int(page.url.split("/quotes/")[1].split("/")[0])


async def test_field_errors_show_at_the_field_and_block_add_until_fixed(
        live_url: str, sessions: sessionmaker[Session], cast: Cast, browser: Browser) -> None:
    page = await browser_login(browser, live_url, cast.rep.email)
    await new_quote(page, live_url, "Seats for Initech")
    await page.get_by_role("button", name="Analytics seat (annual)").click()
    panel = page.locator("form.configurator")
    add = panel.get_by_role("button", name="Add to quote")
    discount, discount_error = panel.locator("input[name=discount]"), panel.locator("#err-discount")
    await expect(add).to_be_enabled()

    await discount.fill("150")
    await expect(discount).to_have_attribute("aria-invalid", "true")
    await expect(discount_error).to_have_text("Enter a percentage from 0 to 100, such as 12.5.")
    await expect(add).to_be_disabled()
    await expect(panel.locator("#add-blocked")).to_have_text(
        "Fix the highlighted fields to add it.")
    await expect(panel.locator("[data-preview]")).to_be_hidden()  # no prices for 150%
    await expect(page.locator("#flash")).to_be_empty()  # at the field, not in a banner

    qty = panel.locator("input[name=qty]")
    await qty.fill("0")
    await expect(panel.locator("#err-qty")).to_have_text(
        "Enter a whole number from 1 to 1,000,000.")
    await discount.fill("10")
    await expect(discount).not_to_have_attribute("aria-invalid", "true")
    await expect(discount_error).to_be_hidden()
    await expect(add).to_be_disabled()  # the quantity is still wrong
    await qty.fill("4")
    await qty.press("Tab")  # the change goes to the server, which prices 4 seats at 10% off
    await expect(panel.locator("#err-qty")).to_be_hidden()
    await expect(add).to_be_enabled()
    await expect(panel.locator("[data-preview] tfoot")).to_contain_text("360.00 USD")
    await add.click()
    await expect(page.locator("table.lines tbody.item")).to_have_count(1)
    await expect(page.locator("#totals")).to_contain_text("360.00 USD")


async def test_reseller_channel_takes_a_tier_and_reaches_partner_prices(
        live_url: str, sessions: sessionmaker[Session], cast: Cast, browser: Browser) -> None:
    page = await browser_login(browser, live_url, cast.rep.email)
    await new_quote(page, live_url, "Reseller seats")
    await page.get_by_role("button", name="Analytics seat (annual)").click()
    await page.locator("form.configurator").get_by_role("button", name="Add to quote").click()
    await expect(page.locator("#totals")).to_contain_text("100.00 USD")

    tier = page.locator("select[name=partner_tier]")
    await expect(tier).to_be_disabled()  # direct deals have no tier
    await page.locator("select[name=channel]").focus()
    await page.select_option("select[name=channel]", "reseller")
    # The tier opens at once, says why it is needed, and takes the focus.
    await expect(tier).to_be_enabled()
    await expect(tier).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#err-partner_tier")).to_contain_text(
        "Choose the partner's tier: reseller prices depend on it.")
    await expect(tier).to_be_focused()
    await expect(tier.locator("option")).to_have_text(
        ["Choose a tier…", "Gold · 20% off", "Silver · 12% off"])
    await expect(page.locator("#flash")).to_be_empty()

    await tier.select_option("gold")
    await expect(page.locator("#err-partner_tier")).to_be_hidden()
    await expect(page.locator("select[name=channel]")).to_have_value("reseller")
    await expect(page.locator("select[name=partner_tier]")).to_have_value("gold")
    lines = page.locator("table.lines")
    await lines.locator("summary").click()
    await expect(lines).to_contain_text("partner 80.00")
    await expect(net_total(page)).to_have_text("80.00 USD")

    # A distributor has its own tier: gold is not one of them, so it is asked for again.
    # (Its net price list then prices the seat at 68.00, with no partner discount on top.)
    await page.select_option("select[name=channel]", "distributor")
    await expect(page.locator("select[name=partner_tier] option")).to_have_text(
        ["Choose a tier…", "Authorised · 25% off"])
    await expect(page.locator("#err-partner_tier")).to_contain_text("distributor prices")
    await page.select_option("select[name=partner_tier]", "authorised")
    await expect(net_total(page)).to_have_text("68.00 USD")
    # Back to direct: the tier is off again and the list price is back.
    await page.select_option("select[name=channel]", "direct")
    await expect(page.locator("select[name=partner_tier]")).to_be_disabled()
    await expect(net_total(page)).to_have_text("100.00 USD")


def net_total(page: Page) -> Locator:
    """The quote's net total (the totals row: label, list, discount, net)."""
    return page.locator("#totals tr").first.locator("th").nth(3)


async def test_the_server_answers_at_the_field_too(
        live_url: str, sessions: sessionmaker[Session], cast: Cast, browser: Browser) -> None:
    """What gets past the browser (no JS, an old page): the same messages at the same
    fields, as a 422 that swaps the panel; parallel previews each get their own answer."""
    page = await browser_login(browser, live_url, cast.rep.email)
    quote_id = await new_quote(page, live_url, "Server checks")
    web, csrf = await browser_session(live_url, cast.rep)
    hx = {"HX-Request": "true", "X-CSRF-Token": csrf, "HX-Target": "lines-table"}
    form = {"sku": "ANL-SEAT", "seen": "", "qty": "2", "discount": "abc"}
    r = await web.post(f"/quotes/{quote_id}/build/items", data=form, headers=hx)
    assert r.status_code == 422 and r.headers["HX-Retarget"] == "#panel"
    assert re.search(r'name="discount"[^>]*value="abc"[^>]*aria-invalid="true"', r.text, re.S)
    assert "Enter a percentage from 0 to 100" in r.text
    assert re.search(r"<button[^>]*data-add[^>]*disabled", r.text, re.S)

    bad_tier = {"channel": "reseller", "partner_tier": "platinum", "header_discount": "0"}
    r = await web.post(f"/quotes/{quote_id}/build/pricing", data=bad_tier, headers=hx)
    assert r.status_code == 422 and r.headers["HX-Retarget"] == "#pricing"
    assert "Choose the partner&#39;s tier: reseller prices depend on it." in r.text
    assert re.search(r'name="partner_tier"[^>]*aria-invalid="true"', r.text, re.S)

    # 20 previews at once, half with a field wrong: each answers for its own form.
    async def preview(i: int) -> tuple[int, bool]:
        data = {**form, "qty": str(i + 1), "discount": "5" if i % 2 else "500"}
        r = await web.post(f"/quotes/{quote_id}/build/configure", data=data, headers=hx)
        return r.status_code, 'aria-invalid="true"' in r.text
    answers = await asyncio.gather(*(preview(i) for i in range(20)))
    assert answers == [(200, i % 2 == 0) for i in range(20)]
    await web.aclose()
