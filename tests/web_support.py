"""Helpers for tests that talk HTTP to the live app."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from playwright.async_api import Browser, Page
from sqlalchemy.orm import Session, sessionmaker

from store.models import User
from tests.support import load_policy, make_account, make_user

POLICY = """
name: web
steps:
  - key: manager
    name: Sales manager
    approvers: [{role: sales_manager}]
    mode: any
  - key: finance
    name: Finance
    after: [manager]
    approvers: [{role: finance}]
rules:
  - id: discount
    when: [{fact: discount_pct, op: gt, value: 10}]
    add: [manager, finance]
"""


@dataclass
class People:
    rep: User
    manager: User
    manager2: User
    finance: User
    legal: User
    auditor: User
    admin: User
    account_id: int

    def by_role(self, role: str) -> User:
        return {"rep": self.rep, "sales_manager": self.manager, "finance": self.finance,
                "legal": self.legal, "auditor": self.auditor, "admin": self.admin}[role]


def seed_people(sessions: sessionmaker[Session], policy: str = POLICY) -> People:
    with sessions.begin() as s:
        p = People(
            rep=make_user(s, "Rae Rep", "rep"),
            manager=make_user(s, "Mo Manager", "sales_manager"),
            manager2=make_user(s, "Mia Manager", "sales_manager"),
            finance=make_user(s, "Fay Finance", "finance"),
            legal=make_user(s, "Lou Legal", "legal"),
            auditor=make_user(s, "Aud Itor", "auditor"),
            admin=make_user(s, "Ad Min", "admin"),
            account_id=make_account(s).id,
        )
        load_policy(s, policy)
        s.expunge_all()
    return p


async def token_client(base_url: str, user: User) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url, timeout=30)
    r = await client.post("/api/v1/auth/token", json={"email": user.email, "password": "pw"})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return client


async def browser_session(base_url: str, user: User) -> tuple[httpx.AsyncClient, str]:
    """A cookie-session client (as a browser would be), and its CSRF token."""
    client = httpx.AsyncClient(base_url=base_url, timeout=30, follow_redirects=False)
    page = await client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    r = await client.post("/login", data={"email": user.email, "password": "pw",
                                          "csrf_token": csrf.group(1)})
    assert r.status_code == 303, r.text
    home = await client.get("/inbox")
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', home.text)
    assert token
    return client, token.group(1)


def quote_body(account_id: int, net: int = 8_000_000, **over: object) -> dict[str, object]:
    body: dict[str, object] = {"account_id": account_id, "title": "API quote", "currency": "USD",
                               "list_amount": 10_000_000, "net_amount": net,
                               "cost_amount": 3_000_000, "term_months": 12}
    body.update(over)
    return body


async def browser_login(browser: Browser, base: str, email: str, width: int = 1280) -> Page:
    """A fresh Chromium context logged in as ``email`` (password "pw"), on its inbox."""
    page = await (await browser.new_context(viewport={"width": width, "height": 900})).new_page()
    await page.goto(f"{base}/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", "pw")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/inbox")
    return page
