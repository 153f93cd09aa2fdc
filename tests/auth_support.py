"""Helpers for the sign-in tests: logging in through the form or the token endpoint as a given
client address, reading the audit trail, and moving stored times back."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from store.auth import LoginThrottle
from store.models import AuditEvent
from web.services import login as login_service


def addressed(ip: str) -> dict[str, str]:
    """Headers that make a request come from ``ip``: the test server's uvicorn trusts
    X-Forwarded-For from 127.0.0.1, as a production one trusts its proxy."""
    return {"X-Forwarded-For": ip}


async def login_form_csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def form_login(client: httpx.AsyncClient, csrf: str, email: str, password: str,
                     ip: str = "127.0.0.1") -> httpx.Response:
    return await client.post("/login", data={"email": email, "password": password,
                                             "csrf_token": csrf}, headers=addressed(ip))


async def token_login(client: httpx.AsyncClient, email: str, password: str,
                      ip: str = "127.0.0.1", **extra: object) -> httpx.Response:
    return await client.post("/api/v1/auth/token", headers=addressed(ip),
                             json={"email": email, "password": password, **extra})


async def signed_in(base_url: str, email: str, password: str = "pw",
                    ip: str = "127.0.0.1") -> tuple[httpx.AsyncClient, str]:
    """A cookie-session client and its CSRF token (for X-CSRF-Token or forms)."""
    client = httpx.AsyncClient(base_url=base_url, timeout=30, follow_redirects=False)
    r = await form_login(client, await login_form_csrf(client), email, password, ip)
    assert r.status_code == 303, r.text
    page = await client.get("/account")
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert token, page.text
    return client, token.group(1)


def audit_rows(sessions: sessionmaker[Session], action: str,
               entity: str | None = None) -> list[AuditEvent]:
    with sessions() as s:
        q = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        if entity is not None:
            q = q.where(AuditEvent.entity == entity)
        return list(s.scalars(q))


def end_lockout(sessions: sessionmaker[Session], key: str) -> None:
    """Let a lockout run out now instead of waiting for it."""
    with sessions.begin() as s:
        s.execute(update(LoginThrottle).where(LoginThrottle.key == key).values(
            locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))


def move_back(sessions: sessionmaker[Session], model: type[Any], where: Any,
              **columns: dt.timedelta) -> None:
    """Move the given time columns of the matching rows back by the given amounts."""
    with sessions.begin() as s:
        for row in s.scalars(select(model).where(where)):
            for name, delta in columns.items():
                setattr(row, name, getattr(row, name) - delta)


def count_password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every password the login service verifies (still verifying it for real): a
    locked account or address must cost no argon2 check at all."""
    checked: list[str] = []
    real: Callable[[str | None, str], bool] = login_service.password_matches

    def counting(password_hash: str | None, password: str) -> bool:
        checked.append(password)
        return real(password_hash, password)

    monkeypatch.setattr(login_service, "password_matches", counting)
    return checked
