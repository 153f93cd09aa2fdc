"""Signing in headless Chromium: the signer opens the link on a phone-sized screen, draws and
types a signature and signs; meanwhile the sender's envelope page (another browser context)
shows the recipient as signed without a reload. Screenshots go to /tmp/shots/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store.blobs import BlobStore
from store.models import EnvelopeRecipient, OutboxMessage, User
from tests.pdfs import contract_pdf
from tests.support import eventually
from tests.web_support import browser_login, seed_people
from web.services import envelopes as svc

SHOTS = Path("/tmp/shots")
pytestmark = pytest.mark.browser


async def no_sideways_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 0, f"{page.url} scrolls sideways by {width}px"


@pytest.fixture(autouse=True)
def shots_dir() -> Path:
    SHOTS.mkdir(exist_ok=True)
    return SHOTS


async def shoot(page: Page, name: str, width: int) -> None:
    await page.set_viewport_size({"width": width, "height": 900})
    await page.wait_for_timeout(150)
    await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=width < 800)
    if width < 800:
        await no_sideways_scroll(page)


async def test_signer_signs_on_a_phone_while_the_sender_watches(
        live_url: str, sessions: sessionmaker[Session], client: Client, settings: Settings,
        browser: Browser) -> None:
    people = seed_people(sessions)
    with sessions() as s:
        rep = s.get(User, people.rep.id)
        assert rep is not None
        env = await svc.create_envelope(
            s, client, settings, BlobStore(settings.blob_dir), rep, svc.EnvelopeIn(
                title="Master services agreement — Globex", document_name="msa.pdf",
                document=contract_pdf(3), message="Hi Ann, here is the MSA we discussed.",
                recipients=[
                    svc.RecipientIn("Ann Buyer", "ann@globex.test"),
                    svc.RecipientIn("Ben Buyer", "ben.buyer@globex.test"),
                    svc.RecipientIn(people.legal.name, people.legal.email, routing_order=2,
                                    user_id=people.legal.id)]))
        eid = env.id

    def link() -> str | None:
        with sessions() as s:
            body = s.scalar(select(OutboxMessage.body).where(
                OutboxMessage.to_addr == "ann@globex.test"))
        m = re.search(r"(/sign/[A-Za-z0-9_-]+)", body or "")
        return m.group(1) if m else None

    path = await eventually(link, timeout=20)

    sender = await browser_login(browser, live_url, people.rep.email)
    await sender.goto(f"{live_url}/envelopes/{eid}")
    ann_row = sender.locator("#recipients tr", has_text="Ann Buyer")
    await expect(ann_row).to_contain_text("sent")
    await sender.evaluate("window.__notReloaded = true")

    signer = await (await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
        device_scale_factor=2)).new_page()
    await signer.goto(f"{live_url}{path}")
    await expect(signer.locator("h1")).to_have_text("Master services agreement — Globex")
    await expect(signer.locator(".doc img").first).to_be_visible()
    await expect(ann_row).to_contain_text("viewed", timeout=10_000)  # live, no reload
    await shoot(signer, "signer", 390)
    await shoot(signer, "signer", 1280)
    await signer.set_viewport_size({"width": 390, "height": 844})

    await signer.fill("input[name=typed_name]", "Ann Buyer")
    canvas = signer.locator("[data-sigpad] canvas")
    await expect(canvas).to_be_visible()
    box = await canvas.bounding_box()
    assert box is not None
    await signer.mouse.move(box["x"] + 20, box["y"] + 80)
    await signer.mouse.down()
    for x, y in ((60, 40), (100, 90), (140, 35), (190, 85), (240, 50)):
        await signer.mouse.move(box["x"] + x, box["y"] + y, steps=4)
    await signer.mouse.up()
    await signer.locator("label.agree").click()
    await signer.get_by_role("button", name="Sign", exact=True).click()
    await expect(signer.locator(".status-card h2")).to_have_text("Signed — thank you",
                                                                 timeout=30_000)
    await shoot(signer, "signer-signed", 390)
    await signer.goto(f"{live_url}/sign/{'x' * 43}")
    await expect(signer.locator("h1")).to_have_text("This signing link is not valid")
    await shoot(signer, "signer-invalid", 390)

    await expect(ann_row.locator(".state")).to_have_text("signed", timeout=10_000)
    assert await sender.evaluate("window.__notReloaded === true")
    await expect(sender.locator(".events")).to_contain_text("Ann Buyer signed")
    await shoot(sender, "envelope", 1280)
    await shoot(sender, "envelope", 390)

    with sessions() as s:
        ann = s.scalar(select(EnvelopeRecipient).where(
            EnvelopeRecipient.email == "ann@globex.test"))
        assert ann is not None and ann.status == "signed" and ann.typed_name == "Ann Buyer"

    # The sender's other pages, for the screenshots and the phone check.
    for url, name in (("/envelopes", "envelopes"), ("/envelopes/new", "envelope-new"),
                      ("/envelopes/waiting", "envelope-waiting")):
        await sender.goto(f"{live_url}{url}")
        await shoot(sender, name, 1280)
        await shoot(sender, name, 390)
