"""An auditor cannot act anywhere: every route that changes something, in the API and in the
pages, called as an auditor on records that exist, is refused, and nothing but their own
sign-in and views reaches the audit log."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Route

from dealdesk.settings import Settings
from store.models import ApprovalTask, AuditEvent
from tests.support import eventually
from tests.web_support import People, browser_session, quote_body, seed_people, token_client
from web.app import create_app

READS = {"GET", "HEAD", "OPTIONS"}
THEIR_OWN = ("auditor.viewed", "login.succeeded", "token.issued", "logout")
"""What an auditor's requests may write: their sign-in, their views."""
EXEMPT = {"/login", "/logout", "/api/v1/auth/token", "/api/v1/auth/logout",
          "/account/password", "/account/sessions/{session_row}/end", "/account/tokens",
          "/account/tokens/{token_id}/revoke"}
"""Their own sign-in, password, sessions and API tokens: every user manages those."""
CHECKS = {"/audit/verify", "/verify"}
"""Posted forms that only check (the audit chain, an uploaded PDF's signatures): an auditor's
own work, which changes nothing (the log below shows it)."""


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


def _writes(settings: Settings) -> list[tuple[str, str]]:
    """Every (method, path) of the app that changes state, path parameters left in."""
    out: list[tuple[str, str]] = []
    for included in create_app(settings).routes:
        # FastAPI builds an included router's table lazily: read the router's own routes.
        router = getattr(included, "original_router", None)
        for route in router.routes if router is not None else [included]:
            if isinstance(route, APIRoute | Route) and route.methods:
                out += [(m, route.path) for m in sorted(route.methods - READS)
                        if route.path not in EXEMPT]
    return out


def _filled(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{([a-z_]+)(:[a-z]+)?\}", lambda m: ids.get(m.group(1), "1"), path)


def _others(sessions: sessionmaker[Session], since: int) -> list[str]:
    with sessions() as s:
        return [f"{e.action} {e.entity}" for e in s.scalars(
            select(AuditEvent).where(AuditEvent.id > since,
                                     AuditEvent.action.not_in(THEIR_OWN)))]


async def test_an_auditor_is_refused_on_every_write_route(
        live_url: str, settings: Settings, people: People,
        sessions: sessionmaker[Session]) -> None:
    rep = await token_client(live_url, people.rep)
    r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id))
    assert r.status_code == 201, r.text
    quote = r.json()
    assert (await rep.post(f"/api/v1/quotes/{quote['id']}/submit")).status_code == 202

    def open_task() -> str | None:
        with sessions() as s:
            return s.scalar(select(ApprovalTask.id).where(ApprovalTask.state == "open"))

    task = await eventually(open_task, timeout=30)
    ids = {"quote_id": str(quote["id"]), "deal_id": str(quote["deal_id"]), "task_id": task,
           "account_id": str(people.account_id), "user_id": str(people.rep.id)}
    with sessions() as s:
        since = s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0

    api = await token_client(live_url, people.auditor)
    web, csrf = await browser_session(live_url, people.auditor)
    acted = []
    routes = _writes(settings)
    assert len(routes) > 80  # the whole app, not a sample
    for method, path in routes:
        url = _filled(path, ids)
        if path.startswith("/api/"):
            r = await api.request(method, url, json={})
        else:
            r = await web.request(method, url, data={"csrf_token": csrf},
                                  headers={"X-CSRF-Token": csrf})
        if r.status_code < 400 and path not in CHECKS:
            acted.append(f"{method} {url}: {r.status_code}")
    assert acted == [], '\n'.join(acted)
    assert _others(sessions, since) == []
    for c in (rep, api, web):
        await c.aclose()
