"""API tokens against the live app: named and expiring, listed and revoked through the JSON
API, the account page and ``dealdesk tokens`` (one set of use cases behind all three);
revoked and expired tokens get 401 saying why; last use is written at most once a minute."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.models import ApiToken, User
from tests.auth_support import audit_rows, move_back, signed_in, token_login
from tests.processes import DEALDESK
from tests.support import make_user


@pytest.fixture
def rae(sessions: sessionmaker[Session]) -> User:
    with sessions.begin() as s:
        user = make_user(s, "Rae Rep", "rep")
        s.expunge_all()
    return user


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _me(base_url: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url) as c:
        return await c.get("/api/v1/me", headers=_bearer(token))


def tokens_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    if not DEALDESK.exists():
        pytest.fail(f"{DEALDESK} is missing: run .venv/bin/pip install -e . --no-deps")
    env = {**os.environ, "DEALDESK_DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run([str(DEALDESK), "tokens", *args], env=env, text=True,
                          capture_output=True, timeout=60, check=False)


async def test_tokens_through_the_api(live_url: str, sessions: sessionmaker[Session],
                                      rae: User) -> None:
    async with httpx.AsyncClient(base_url=live_url) as anon:
        r = await token_login(anon, rae.email, "pw", name="CRM sync", expires_in_days=7)
        assert r.status_code == 200, r.text
        crm = r.json()
        default = (await token_login(anon, rae.email, "pw")).json()
        too_long = await token_login(anon, rae.email, "pw", expires_in_days=366)
    assert crm["name"] == "CRM sync" and crm["token"].startswith("ddk_")
    lasts = dt.datetime.fromisoformat(crm["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=6, hours=23) < lasts <= dt.timedelta(days=7)
    lasts = dt.datetime.fromisoformat(default["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29, hours=23) < lasts <= dt.timedelta(days=30)
    assert too_long.status_code == 422 and "expires_in_days" in too_long.text

    api = httpx.AsyncClient(base_url=live_url, headers=_bearer(default["token"]))
    listed = (await api.get("/api/v1/auth/tokens")).json()
    assert [t["id"] for t in listed] == [default["id"], crm["id"]]
    assert listed[1]["prefix"] == crm["token"][:12] and "token" not in listed[1]
    assert listed[0]["last_used_at"] is not None and listed[1]["last_used_at"] is None
    assert {t["status"] for t in listed} == {"active"}

    assert (await _me(live_url, crm["token"])).status_code == 200
    assert (await api.delete(f"/api/v1/auth/tokens/{crm['id']}")).status_code == 204
    refused = await _me(live_url, crm["token"])
    assert refused.status_code == 401 and "was revoked on" in refused.json()["detail"]
    assert refused.headers["www-authenticate"] == "Bearer"
    listed = (await api.get("/api/v1/auth/tokens")).json()
    assert listed[1]["status"] == "revoked" and listed[1]["revoked_at"]

    # Someone else's token is not yours to see or revoke.
    with sessions.begin() as s:
        other = make_user(s, "Oz Other", "rep").email
    async with httpx.AsyncClient(base_url=live_url) as anon:
        theirs = (await token_login(anon, other, "pw")).json()
    assert (await api.delete(f"/api/v1/auth/tokens/{theirs['id']}")).status_code == 404
    assert (await _me(live_url, theirs["token"])).status_code == 200
    await api.aclose()

    issued = audit_rows(sessions, "token.issued", f"user:{rae.id}")
    assert [(e.data["token"], e.data["name"]) for e in issued] == [
        (crm["id"], "CRM sync"), (default["id"], "")]
    [revoked] = audit_rows(sessions, "token.revoked", f"user:{rae.id}")
    assert revoked.actor_email == rae.email and revoked.data["via"] == "api"


async def test_an_expired_or_unknown_token_is_refused(
        live_url: str, sessions: sessionmaker[Session], rae: User) -> None:
    async with httpx.AsyncClient(base_url=live_url) as anon:
        token = (await token_login(anon, rae.email, "pw")).json()["token"]
    assert (await _me(live_url, token)).status_code == 200
    move_back(sessions, ApiToken, ApiToken.user_id == rae.id, expires_at=dt.timedelta(days=31))
    expired = await _me(live_url, token)
    assert expired.status_code == 401 and "expired on" in expired.json()["detail"]
    unknown = await _me(live_url, token[:-4] + "abcd")
    assert unknown.status_code == 401 and "not known" in unknown.json()["detail"]


async def test_last_use_is_written_at_most_once_a_minute(
        live_url: str, sessions: sessionmaker[Session], rae: User) -> None:
    async with httpx.AsyncClient(base_url=live_url) as anon:
        token = (await token_login(anon, rae.email, "pw")).json()["token"]

    def last_used() -> dt.datetime | None:
        with sessions() as s:
            return s.scalar(select(ApiToken.last_used_at).where(ApiToken.user_id == rae.id))

    assert last_used() is None
    # Bounded concurrency: 30 requests at once with a never-used token.
    answers = await asyncio.gather(*(_me(live_url, token) for _ in range(30)))
    assert {a.status_code for a in answers} == {200}
    first = last_used()
    assert first is not None
    for _ in range(3):
        assert (await _me(live_url, token)).status_code == 200
    assert last_used() == first
    move_back(sessions, ApiToken, ApiToken.user_id == rae.id,
              last_used_at=dt.timedelta(minutes=2))
    assert (await _me(live_url, token)).status_code == 200
    later = last_used()
    assert later is not None and later > first


async def test_tokens_through_the_account_page(
        live_url: str, sessions: sessionmaker[Session], rae: User) -> None:
    web, csrf = await signed_in(live_url, rae.email)
    r = await web.post("/account/tokens", data={"csrf_token": csrf, "name": "Laptop script",
                                                "expires_in_days": "90"})
    assert r.status_code == 200 and "shown only this once" in r.text
    found = re.search(r'value="(ddk_[^"]+)"', r.text)
    assert found
    token = found.group(1)
    page = (await web.get("/account")).text
    assert token not in page and token[:12] in page and "Laptop script" in page
    assert "never" in page  # not used yet
    assert (await _me(live_url, token)).status_code == 200
    with sessions() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.user_id == rae.id))
        assert row is not None
        assert dt.timedelta(days=89, hours=23) < row.expires_at - dt.datetime.now(dt.UTC)
    # Revoking through htmx swaps the account block in place.
    r = await web.post(f"/account/tokens/{row.id}/revoke", data={"csrf_token": csrf},
                       headers={"HX-Request": "true"})
    assert r.status_code == 200 and "Token Laptop script revoked." in r.text
    assert "<html" not in r.text and "revoked</span>" in r.text
    assert (await _me(live_url, token)).status_code == 401
    # A year at most; the page says what was wrong.
    r = await web.post("/account/tokens", data={"csrf_token": csrf, "name": "x",
                                                "expires_in_days": "400"},
                       headers={"HX-Request": "true"})
    assert r.status_code == 422 and "1 to 365 days" in r.text
    await web.aclose()
    [revoked] = audit_rows(sessions, "token.revoked", f"user:{rae.id}")
    assert revoked.data["via"] == "account page"


async def test_tokens_through_the_command_line(
        live_url: str, sessions: sessionmaker[Session], database_url: str, rae: User,
        tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=live_url) as anon:
        ci = (await token_login(anon, rae.email, "pw", name="CI deploys")).json()
        bot = (await token_login(anon, rae.email, "pw", name="Chat bot")).json()
    await _me(live_url, ci["token"])

    listed = tokens_cli(database_url, "list", "--user", rae.email.upper())
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "USER", "NAME", "TOKEN"]
    ci_line = next(line for line in lines if "CI deploys" in line)
    assert ci_line.split()[0] == str(ci["id"]) and ci["token"][:12] + "…" in ci_line
    assert ci_line.split()[-1] == "active" and "never" not in ci_line
    assert "never" in next(line for line in lines if "Chat bot" in line)

    by_prefix = tokens_cli(database_url, "revoke", ci["token"][:12])
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert f"revoked token {ci['id']} (CI deploys) of {rae.email}" in by_prefix.stdout
    by_id = tokens_cli(database_url, "revoke", str(bot["id"]))
    assert by_id.returncode == 0 and "revoked token" in by_id.stdout
    again = tokens_cli(database_url, "revoke", str(bot["id"]))
    assert again.returncode == 0 and "revoked already" in again.stdout
    for token in (ci["token"], bot["token"]):
        r = await _me(live_url, token)
        assert r.status_code == 401 and "was revoked" in r.json()["detail"]
    assert "revoked" in tokens_cli(database_url, "list").stdout

    unknown = tokens_cli(database_url, "revoke", "ddk_zzzzzzzz")
    assert unknown.returncode == 2 and "no API token starts with ddk_zzzzzzzz" in unknown.stderr
    vague = tokens_cli(database_url, "revoke", "CI")
    assert vague.returncode == 2 and "by its number or by its first characters" in vague.stderr
    nobody = tokens_cli(database_url, "list", "--user", "nobody@x.test")
    assert nobody.returncode == 2 and "no user with email" in nobody.stderr
    revoked = audit_rows(sessions, "token.revoked", f"user:{rae.id}")
    assert [(e.actor, e.data["via"]) for e in revoked] == [("system", "cli")] * 2
