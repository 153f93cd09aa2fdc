"""Login throttling against the live app: per account and per client address, 429 with
Retry-After and growing lockouts, no password checks while locked, audit rows, and a burst of
wrong passwords that leaves other requests fast."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.auth import LoginThrottle
from store.models import User
from tests.auth_support import (
    audit_rows,
    count_password_checks,
    end_lockout,
    form_login,
    login_form_csrf,
    token_login,
)
from tests.support import eventually, make_user
from web.services.passwords import CORES


@pytest.fixture
def rae(sessions: sessionmaker[Session]) -> User:
    with sessions.begin() as s:
        user = make_user(s, "Rae Rep", "rep")
        s.expunge_all()
    return user


async def test_wrong_passwords_lock_the_account_with_growing_waits(
        live_url: str, sessions: sessionmaker[Session], rae: User,
        monkeypatch: pytest.MonkeyPatch) -> None:
    checked = count_password_checks(monkeypatch)
    key = f"account:{rae.email}"
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as web:
        csrf = await login_form_csrf(web)
        # Five wrong passwords through the form, then five through the API with the email in
        # capitals and from other addresses: one account, one count.
        answers = [await form_login(web, csrf, rae.email, f"wrong-{i}", ip="10.1.0.1")
                   for i in range(5)]
        answers += [await token_login(web, rae.email.upper(), "wrong", ip=f"10.1.1.{i}")
                    for i in range(5)]
        assert [a.status_code for a in answers] == [401] * 4 + [429] * 6
        assert "That email and password" in answers[0].text
        for a in answers[4:]:
            assert 25 <= int(a.headers["Retry-After"]) <= 30, a.headers
        assert "Too many failed sign-in attempts for this account" in answers[4].text
        assert "try again in 30 seconds" in answers[4].text  # the login page says how long
        assert "try again in" in answers[-1].json()["detail"]
        assert len(checked) == 5  # locked: no more argon2 work

        # The right password is refused too while the lockout lasts, through either door.
        assert (await form_login(web, csrf, rae.email, "pw")).status_code == 429
        assert (await token_login(web, rae.email, "pw")).status_code == 429
        assert len(checked) == 5

        # It ran out: five more failures lock it for twice as long.
        end_lockout(sessions, key)
        again = [await token_login(web, rae.email, "wrong", ip="10.1.2.1") for _ in range(5)]
        assert [a.status_code for a in again] == [401] * 4 + [429]
        assert 55 <= int(again[-1].headers["Retry-After"]) <= 60
        assert "try again in 1 minute" in again[-1].json()["detail"]

        # After it, the right password works and starts the account afresh.
        end_lockout(sessions, key)
        assert (await form_login(web, csrf, rae.email, "pw")).status_code == 303
        with sessions() as s:
            assert s.get(LoginThrottle, key) is None
        fresh = [await token_login(web, rae.email, "wrong", ip="10.1.3.1") for _ in range(5)]
        assert 25 <= int(fresh[-1].headers["Retry-After"]) <= 30

    entity = f"user:{rae.id}"
    failed = audit_rows(sessions, "login.failed", entity)
    assert len(failed) == 15
    assert {f.data["ip"] for f in failed[:5]} == {"10.1.0.1"}
    assert {f.data["via"] for f in failed} == {"form", "api"}
    assert {f.data["reason"] for f in failed} == {"wrong_password"}
    locked = audit_rows(sessions, "login.locked", entity)
    assert [(e.data["seconds"], e.data["lockout"]) for e in locked] == [(30, 1), (60, 2), (30, 1)]
    succeeded = audit_rows(sessions, "login.succeeded", entity)
    assert len(succeeded) == 1 and succeeded[0].data["via"] == "form"


async def test_one_address_is_limited_across_emails(
        live_url: str, sessions: sessionmaker[Session], rae: User,
        monkeypatch: pytest.MonkeyPatch) -> None:
    checked = count_password_checks(monkeypatch)
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as web:
        # Twenty different emails (unknown ones, and a real one with a wrong password) from
        # one address: the twentieth failure locks the address.
        answers = [await token_login(web, f"nobody-{i}@spray.test", "Winter2026!", ip="10.2.0.9")
                   for i in range(19)]
        answers.append(await token_login(web, rae.email, "Winter2026!", ip="10.2.0.9"))
        assert [a.status_code for a in answers] == [401] * 19 + [429]
        assert "your network address" in answers[-1].json()["detail"]
        # Unknown emails were checked against a dummy hash, as long as a wrong password takes.
        assert len(checked) == 20
        # Locked out from there, even with the right password; from elsewhere Rae gets in.
        assert (await token_login(web, rae.email, "pw", ip="10.2.0.9")).status_code == 429
        assert (await token_login(web, rae.email, "pw", ip="10.2.0.10")).status_code == 200
        # An unknown email counts against that email too, wherever the guesses come from.
        ghost = [await token_login(web, "ghost@spray.test", "x", ip=f"10.2.1.{i}")
                 for i in range(6)]
        assert [a.status_code for a in ghost] == [401] * 4 + [429] * 2
        assert "this account" in ghost[-1].json()["detail"]
    assert len(audit_rows(sessions, "login.locked", "address:10.2.0.9")) == 1
    unknown = audit_rows(sessions, "login.failed", "user:unknown")
    assert len(unknown) == 19 + 5
    assert {u.data["reason"] for u in unknown} == {"unknown_email"}


async def _burst_at_one_account(live_url: str, sessions: sessionmaker[Session], user: User,
                                checked: list[str]) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=60) as web:
        csrf = await login_form_csrf(web)
        tries = [form_login(web, csrf, user.email, f"guess-{i}", ip=f"10.3.0.{i}")
                 if i % 2 else token_login(web, user.email, f"guess-{i}", ip=f"10.3.0.{i}")
                 for i in range(20)]
        answers = await asyncio.gather(*tries)
    codes = [a.status_code for a in answers]
    assert codes.count(401) == 4 and codes.count(429) == 16, codes
    # However the twenty interleave, five passwords are checked (a few more at worst when
    # several hashing cores check at once; this machine's count is CORES).
    assert 5 <= len(checked) <= 5 + CORES - 1
    assert len(audit_rows(sessions, "login.failed", f"user:{user.id}")) == len(checked)
    assert len(audit_rows(sessions, "login.locked", f"user:{user.id}")) == 1
    with sessions() as s:
        rows = s.scalars(select(LoginThrottle).where(LoginThrottle.key.like("address:10.3.%")))
        # Refused attempts cost the addresses nothing.
        assert sum(r.failures for r in rows) == len(checked)


async def test_a_burst_at_one_account_checks_five_passwords(
        live_url: str, sessions: sessionmaker[Session], rae: User,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await _burst_at_one_account(live_url, sessions, rae, count_password_checks(monkeypatch))


@pytest.mark.postgres
async def test_a_burst_at_one_account_checks_five_passwords_on_postgresql(
        live_url: str, sessions: sessionmaker[Session], rae: User,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await _burst_at_one_account(live_url, sessions, rae, count_password_checks(monkeypatch))


async def test_a_burst_of_wrong_passwords_leaves_other_requests_fast(
        live_url: str, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty parallel wrong-password logins at twenty accounts (each one an argon2 check)
    while the static files and /healthz are fetched over and over: those stay fast."""
    checked = count_password_checks(monkeypatch)
    with sessions.begin() as s:
        emails = [make_user(s, f"Burst {i}", "rep").email for i in range(10)]
    emails += [f"stranger-{i}@burst.test" for i in range(10)]
    paths = ("/static/app.css", "/healthz")
    statuses: list[int] = []

    async def probe(client: httpx.AsyncClient, path: str, timings: list[float],
                    done: asyncio.Event) -> None:
        while not done.is_set():
            start = time.perf_counter()
            r = await client.get(path)
            timings.append(time.perf_counter() - start)
            statuses.append(r.status_code)
            await asyncio.sleep(0.02)

    async def probing(client: httpx.AsyncClient, work: Awaitable[object]
                      ) -> dict[str, list[float]]:
        timings: dict[str, list[float]] = {p: [] for p in paths}
        done = asyncio.Event()
        probes = [asyncio.create_task(probe(client, p, timings[p], done)) for p in paths]
        await work
        done.set()
        await asyncio.gather(*probes)
        return timings

    async with httpx.AsyncClient(base_url=live_url, timeout=60) as attacker, \
            httpx.AsyncClient(base_url=live_url, timeout=60) as bystander:
        async def healthy() -> bool:  # (the first call also connects)
            return (await bystander.get("/healthz")).status_code == 200
        # Up first: until the worker's first poll and heartbeat, /healthz rightly says 503.
        await eventually(healthy, timeout=30)
        quiet = await probing(bystander, asyncio.sleep(1))  # for comparison only
        started = time.perf_counter()
        burst = asyncio.gather(*(token_login(attacker, email, "wrong", ip=f"10.4.0.{i}")
                                 for i, email in enumerate(emails)))
        loaded = await probing(bystander, burst)
        took = time.perf_counter() - started
        answers = burst.result()
    assert {a.status_code for a in answers} == {401}
    assert len(checked) == 20
    assert all(code < 500 for code in statuses), statuses
    for path in paths:
        print(f"{path}: quiet {_ms(quiet[path])}; during the {took:.1f} s burst "
              f"{_ms(loaded[path])}")
        p95 = _p95(loaded[path])
        assert p95 < 0.2, f"{path} p95 {p95 * 1000:.0f} ms during the burst"


def _p95(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=20)[-1] if len(seconds) >= 2 else seconds[0]


def _ms(seconds: list[float]) -> str:
    return (f"{len(seconds)} requests, p50 {statistics.median(seconds) * 1000:.1f} ms, "
            f"p95 {_p95(seconds) * 1000:.1f} ms")
