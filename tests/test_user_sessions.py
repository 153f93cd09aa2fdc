"""Server-side sessions against the live app: logout ends a session even for a replayed cookie,
a password change ends the others, an admin's "sign out everywhere" ends another browser's,
idle and absolute timeouts, last_seen written at most once a minute, and sessions that
survive a restart of the web process."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import httpx
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store.auth import LoginThrottle, UserSession, prune
from store.models import User
from tests.auth_support import (
    addressed,
    audit_rows,
    login_form_csrf,
    move_back,
    signed_in,
    token_login,
)
from tests.support import make_user, serve
from tests.web_support import browser_login


@pytest.fixture
def rae(sessions: sessionmaker[Session]) -> User:
    with sessions.begin() as s:
        user = make_user(s, "Rae Rep", "rep")
        s.expunge_all()
    return user


def _cookie(client: httpx.AsyncClient) -> str:
    value = client.cookies.get("dealdesk_session")
    assert value
    return value


async def _still_in(base_url: str, cookie: str) -> bool:
    """Whether a browser holding only this cookie is signed in (page and API)."""
    async with httpx.AsyncClient(base_url=base_url, cookies={"dealdesk_session": cookie},
                                 follow_redirects=False) as replay:
        page = await replay.get("/inbox")
        api = await replay.get("/api/v1/me")
    if page.status_code == 303:
        assert page.headers["location"].startswith("/login")
        assert api.status_code == 401
        return False
    assert page.status_code == 200 and api.status_code == 200
    return True


async def test_logout_ends_the_session_even_for_a_replayed_cookie(
        live_url: str, sessions: sessionmaker[Session], rae: User) -> None:
    web, csrf = await signed_in(live_url, rae.email, ip="10.5.0.1")
    cookie = _cookie(web)
    assert await _still_in(live_url, cookie)
    r = await web.post("/logout", data={"csrf_token": csrf}, headers=addressed("10.5.0.9"))
    assert r.status_code == 303
    assert not await _still_in(live_url, cookie)  # the copy kept from before is dead too
    await web.aclose()
    with sessions() as s:
        row = s.scalar(select(UserSession).where(UserSession.user_id == rae.id))
        assert row is not None and row.revoked_reason == "logout" and row.ip == "10.5.0.1"
        assert "python-httpx" in row.user_agent
    [ended] = audit_rows(sessions, "logout", f"user:{rae.id}")
    assert ended.actor_email == rae.email and ended.data == {"session": row.id, "ip": "10.5.0.9"}
    [login] = audit_rows(sessions, "login.succeeded", f"user:{rae.id}")
    assert login.data == {"ip": "10.5.0.1", "via": "form", "session": row.id}


async def test_a_password_change_ends_the_other_sessions(
        live_url: str, sessions: sessionmaker[Session], rae: User) -> None:
    here, csrf = await signed_in(live_url, rae.email)
    there, _ = await signed_in(live_url, rae.email)
    before = _cookie(there)

    async def change(current: str, new: str, again: str) -> httpx.Response:
        return await here.post("/account/password", data={
            "csrf_token": csrf, "current_password": current, "new_password": new,
            "new_password_again": again}, headers={"Accept": "application/json"})

    wrong = await change("not-it", "a-new-passphrase", "a-new-passphrase")
    assert wrong.status_code == 422 and wrong.json()["field"] == "current_password"
    short = await change("pw", "short", "short")
    assert short.status_code == 422 and "at least 8 characters" in short.json()["detail"]
    differ = await change("pw", "a-new-passphrase", "a-new-passphrase!")
    assert differ.status_code == 422 and differ.json()["field"] == "new_password_again"
    assert await _still_in(live_url, before)

    done = await here.post("/account/password", data={
        "csrf_token": csrf, "current_password": "pw", "new_password": "a-new-passphrase",
        "new_password_again": "a-new-passphrase"})
    assert done.status_code == 200 and "1 other session signed out" in done.text
    assert not await _still_in(live_url, before)
    assert await _still_in(live_url, _cookie(here))  # the browser that changed it stays in
    async with httpx.AsyncClient(base_url=live_url) as anon:
        assert (await token_login(anon, rae.email, "pw")).status_code == 401
        assert (await token_login(anon, rae.email, "a-new-passphrase")).status_code == 200
    for c in (here, there):
        await c.aclose()
    [changed] = audit_rows(sessions, "password.changed", f"user:{rae.id}")
    assert changed.data["sessions_ended"] == 1
    [revoked] = audit_rows(sessions, "sessions.revoked", f"user:{rae.id}")
    assert revoked.data["reason"] == "password_changed" and len(revoked.data["sessions"]) == 1
    # The wrong current password counted as a failed attempt at the account (and so did the
    # old password afterwards).
    failed = audit_rows(sessions, "login.failed", f"user:{rae.id}")
    assert [f.data["via"] for f in failed] == ["password_change", "api"]


async def test_the_account_page_lists_sessions_and_signs_one_out(
        live_url: str, sessions: sessionmaker[Session], rae: User) -> None:
    here, csrf = await signed_in(live_url, rae.email, ip="10.5.1.1")
    there, _ = await signed_in(live_url, rae.email, ip="10.5.1.2")
    page = (await here.get("/account")).text
    assert "10.5.1.1" in page and "10.5.1.2" in page and "this browser" in page
    others = re.findall(r'action="/account/sessions/(\d+)/end"', page)
    assert len(others) == 1  # this browser logs out with "Log out" instead
    r = await here.post(f"/account/sessions/{others[0]}/end", data={"csrf_token": csrf},
                        headers={"HX-Request": "true"})
    assert r.status_code == 200 and "That session is signed out" in r.text
    assert "10.5.1.2" not in r.text
    assert not await _still_in(live_url, _cookie(there))
    # Someone else's session number is not yours to end.
    with sessions() as s:
        mine = s.scalar(select(UserSession.id).where(UserSession.user_id == rae.id,
                                                     UserSession.revoked_at.is_(None)))
        other = make_user(s, "Oz Other", "rep")
        s.commit()
    intruder, intruder_csrf = await signed_in(live_url, other.email)
    r = await intruder.post(f"/account/sessions/{mine}/end", data={"csrf_token": intruder_csrf})
    assert r.status_code == 404
    assert await _still_in(live_url, _cookie(here))
    for c in (here, there, intruder):
        await c.aclose()


async def test_idle_and_absolute_timeouts_and_last_seen_once_a_minute(
        live_url: str, sessions: sessionmaker[Session], rae: User) -> None:
    web, _ = await signed_in(live_url, rae.email)
    cookie = _cookie(web)
    mine = UserSession.user_id == rae.id

    def last_seen() -> dt.datetime:
        with sessions() as s:
            value = s.scalar(select(UserSession.last_seen_at).where(mine))
            assert value is not None
            return value

    seen = last_seen()
    for _ in range(5):
        assert (await web.get("/api/v1/me")).status_code == 200
    assert last_seen() == seen  # requests within the minute write nothing
    move_back(sessions, UserSession, mine, last_seen_at=dt.timedelta(minutes=2))
    assert (await web.get("/api/v1/me")).status_code == 200
    assert last_seen() > seen

    # Idle for longer than the idle timeout (12 h): over.
    move_back(sessions, UserSession, mine, last_seen_at=dt.timedelta(hours=12, minutes=1))
    assert not await _still_in(live_url, cookie)
    # Active, but past its absolute end (7 days after the login): over too.
    active, _ = await signed_in(live_url, rae.email)
    newest = UserSession.id == max(_ids(sessions, rae))
    move_back(sessions, UserSession, newest, expires_at=dt.timedelta(days=7, minutes=1))
    assert not await _still_in(live_url, _cookie(active))
    for c in (web, active):
        await c.aclose()


def _ids(sessions: sessionmaker[Session], user: User) -> list[int]:
    with sessions() as s:
        return list(s.scalars(select(UserSession.id).where(UserSession.user_id == user.id)))


async def test_sessions_survive_a_restart_of_the_web_process(
        settings: Settings, worker: str, sessions: sessionmaker[Session], rae: User) -> None:
    async with serve(settings) as first:
        web, _ = await signed_in(first, rae.email)
        cookie = _cookie(web)
        await web.aclose()
    key = (settings.var_dir / "secret_key").read_text()
    async with serve(settings) as second:  # a new process on the same var/: same secret key
        assert await _still_in(second, cookie)
    assert (settings.var_dir / "secret_key").read_text() == key


async def test_many_parallel_requests_and_logins_on_one_account(
        live_url: str, sessions: sessionmaker[Session], rae: User) -> None:
    """Bounded concurrency: 30 requests at once on one session as its last_seen turns stale,
    and 10 logins of one user at once: no errors, last_seen moved on, ten new sessions."""
    web, _ = await signed_in(live_url, rae.email)
    mine = UserSession.user_id == rae.id
    move_back(sessions, UserSession, mine, last_seen_at=dt.timedelta(minutes=5))
    answers = await asyncio.gather(*(web.get("/api/v1/me") for _ in range(30)))
    assert {a.status_code for a in answers} == {200}
    with sessions() as s:
        seen = s.scalar(select(UserSession.last_seen_at).where(mine))
        assert seen is not None and dt.datetime.now(dt.UTC) - seen < dt.timedelta(minutes=1)

    async def log_in(i: int) -> int:
        async with httpx.AsyncClient(base_url=live_url, timeout=60) as c:
            r = await c.post("/login", data={"email": rae.email, "password": "pw",
                                             "csrf_token": await login_form_csrf(c)},
                             headers={"X-Forwarded-For": f"10.5.2.{i}"})
            return r.status_code

    assert await asyncio.gather(*(log_in(i) for i in range(10))) == [303] * 10
    assert len(_ids(sessions, rae)) == 11
    assert len(audit_rows(sessions, "login.succeeded", f"user:{rae.id}")) == 11
    await web.aclose()


@pytest.mark.browser
async def test_an_admin_signs_a_user_out_everywhere(
        live_url: str, sessions: sessionmaker[Session], browser: Browser, rae: User) -> None:
    with sessions.begin() as s:
        admin = make_user(s, "Ad Min", "admin")
        s.expunge_all()
    async with httpx.AsyncClient(base_url=live_url) as anon:
        token = (await token_login(anon, rae.email, "pw")).json()["token"]
    rep_page = await browser_login(browser, live_url, rae.email)
    admin_page = await browser_login(browser, live_url, admin.email)
    await admin_page.goto(f"{live_url}/users")
    row = admin_page.locator(f"tr[data-user='{rae.id}']")
    await expect(row.locator("td.num")).to_have_text("1")
    await row.locator("input[name=tokens]").check()
    await row.get_by_role("button", name="Sign out everywhere").click()
    await expect(admin_page.locator(".flash.ok")).to_contain_text(
        "Signed Rae Rep out everywhere: 1 session ended, 1 API token revoked.")
    await expect(admin_page.locator(f"tr[data-user='{rae.id}'] td.num")).to_have_text("0")

    await rep_page.reload()
    await expect(rep_page).to_have_url(re.compile(r"/login"))
    async with httpx.AsyncClient(base_url=live_url) as api:
        r = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    await admin_page.goto(f"{live_url}/inbox")  # the admin's own session is untouched
    await expect(admin_page).to_have_url(f"{live_url}/inbox")
    [revoked] = audit_rows(sessions, "sessions.revoked", f"user:{rae.id}")
    assert revoked.actor_email == admin.email and revoked.data["reason"] == "signed_out_by_admin"
    [token_revoked] = audit_rows(sessions, "token.revoked", f"user:{rae.id}")
    assert token_revoked.data["via"] == "sign out everywhere"


def test_long_ended_sessions_and_idle_throttle_rows_are_pruned(
        sessions: sessionmaker[Session], rae: User) -> None:
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    with sessions.begin() as s:
        for name, created, expires, revoked in (
                ("live", now, now + 7 * day, None),
                ("revoked lately", now - day, now + 6 * day, now - day),
                ("revoked long ago", now - 40 * day, now - 33 * day, now - 39 * day),
                ("expired long ago", now - 40 * day, now - 33 * day, None)):
            s.add(UserSession(id_hash=name, user_id=rae.id, created_at=created,
                              last_seen_at=created, expires_at=expires, revoked_at=revoked))
        for key, updated, locked in (("account:fresh@x.test", now, None),
                                     ("account:old@x.test", now - 3 * day, None),
                                     ("address:10.0.0.1", now - 3 * day, now + day)):
            s.add(LoginThrottle(key=key, failures=1, window_started_at=updated,
                                updated_at=updated, locked_until=locked, lockouts=0))
    with sessions() as s:
        assert prune(s) == (2, 1)
        assert sorted(s.scalars(select(UserSession.id_hash))) == ["live", "revoked lately"]
        assert sorted(s.scalars(select(LoginThrottle.key))) == [
            "account:fresh@x.test", "address:10.0.0.1"]  # the lockout still runs
