"""Customer health on the pages: the override form on an account's health page (for CSMs, the
deal desk and admins; never an auditor), the CSV upload on /health with its per-row report of
rejects, the inbox badge counting health alerts, and parallel writes through both forms."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store.health import AccountHealth, AccountMeasure, HealthOverride, HealthTask
from store.models import AuditEvent
from tests.health_support import cast
from tests.support import serve
from tests.web_support import browser_session

__all__ = ["cast"]  # the fixture, imported

TODAY = dt.datetime.now(dt.UTC).date()


def _field_error(html: str, name: str) -> str:
    m = re.search(rf'<span class="field-error" id="err-{name}"[^>]*>([^<]*)</span>', html)
    assert m, f"no error slot for {name}"
    return m.group(1)


def _active(sessions: sessionmaker[Session], aid: int) -> list[HealthOverride]:
    with sessions() as s:
        return list(s.scalars(select(HealthOverride).where(
            HealthOverride.account_id == aid, HealthOverride.ended_at.is_(None))))


async def test_the_override_form_sets_and_ends_an_override(
        settings: Settings, sessions: sessionmaker[Session], cast: dict[str, object]) -> None:
    aid = cast["account_id"]
    assert isinstance(aid, int)
    page = f"/accounts/{aid}/health"
    until = str(TODAY + dt.timedelta(days=30))
    async with serve(settings) as url:
        csm, csrf = await browser_session(url, cast["csm"])  # type: ignore[arg-type]
        r = await csm.get(page)
        assert r.status_code == 200 and 'id="set-override"' in r.text
        assert f'max="{TODAY + dt.timedelta(days=365)}"' in r.text
        # Others who read health see no form; a rep doesn't read it at all.
        for who in ("auditor", "manager"):
            other, _ = await browser_session(url, cast[who])  # type: ignore[arg-type]
            r = await other.get(page)
            assert r.status_code == 200 and "set-override" not in r.text, who
        rep, _ = await browser_session(url, cast["rep"])  # type: ignore[arg-type]
        assert (await rep.get(page)).status_code == 403

        # Without the CSRF token: refused.
        good = {"score": "25", "reason": "Champion left", "expires_on": until}
        assert (await csm.post(f"{page}/override", data=good)).status_code in (400, 403)
        # Problems at their fields, the form as typed, nothing stored.
        for form, field, words in (
                ({**good, "score": "150"}, "score", "0 to 100"),
                ({**good, "score": "a lot"}, "score", "not a whole number"),
                ({**good, "score": ""}, "score", "give the score"),
                ({**good, "reason": "   "}, "reason", "say why"),
                ({**good, "expires_on": str(TODAY + dt.timedelta(days=400))}, "expires_on",
                 "a year ahead"),
                ({**good, "expires_on": str(TODAY - dt.timedelta(days=1))}, "expires_on",
                 "from today"),
                ({**good, "expires_on": "next week"}, "expires_on", "YYYY-MM-DD")):
            r = await csm.post(f"{page}/override", data={**form, "csrf_token": csrf})
            assert r.status_code == 422, (form, r.text[:300])
            assert words in _field_error(r.text, field), (field, r.text[:300])
            assert 'aria-invalid="true"' in r.text
            assert form["reason"] in r.text  # kept as typed
        assert _active(sessions, aid) == []

        r = await csm.post(f"{page}/override", data={**good, "csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == page, r.text
        shown = (await csm.get(page)).text
        assert "Set by hand to 25 by Cass Csm" in shown and "health-critical" in shown
        assert "end-override" in shown
        [o] = _active(sessions, aid)
        assert (o.score, o.band, o.reason) == (25, "critical", "Champion left")
        assert o.expires_at.replace(tzinfo=dt.UTC) == dt.datetime.combine(
            TODAY + dt.timedelta(days=31), dt.time(), dt.UTC)
        # The band follows the score; a second override replaces the first.
        r = await csm.post(f"{page}/override", data={**good, "score": "75",
                                                     "csrf_token": csrf})
        assert r.status_code == 303
        [o] = _active(sessions, aid)
        assert (o.score, o.band) == (75, "good")

        # An auditor is refused even when posting by hand.
        auditor, audit_csrf = await browser_session(url, cast["auditor"])  # type: ignore[arg-type]
        r = await auditor.post(f"{page}/override", data={**good, "csrf_token": audit_csrf})
        assert r.status_code == 403
        r = await auditor.post(f"{page}/override/end", data={"csrf_token": audit_csrf})
        assert r.status_code == 403
        assert len(_active(sessions, aid)) == 1

        # The deal desk ends it; ending it again says there is none.
        desk, desk_csrf = await browser_session(url, cast["desk"])  # type: ignore[arg-type]
        r = await desk.post(f"{page}/override/end", data={"csrf_token": desk_csrf})
        assert r.status_code == 303
        assert _active(sessions, aid) == []
        r = await desk.post(f"{page}/override/end", data={"csrf_token": desk_csrf})
        assert r.status_code == 404 and "no active override" in r.text
        shown = (await desk.get(page)).text
        assert "Set by hand" not in shown and "end-override" not in shown
        r = await desk.post("/accounts/999999/health/override",
                            data={**good, "csrf_token": desk_csrf})
        assert r.status_code == 404
    with sessions() as s:
        assert s.get(AccountHealth, aid) is None  # never computed: back to unscored
        actions = s.scalars(select(AuditEvent.action).where(
            AuditEvent.entity == f"account:{aid}", AuditEvent.action != "auditor.viewed")
            .order_by(AuditEvent.id)).all()
        assert actions == ["health.override_set", "health.override_set",
                           "health.override_cleared"]


async def test_parallel_overrides_leave_one_current_override(
        settings: Settings, sessions: sessionmaker[Session], cast: dict[str, object]) -> None:
    aid = cast["account_id"]
    assert isinstance(aid, int)
    until = str(TODAY + dt.timedelta(days=10))
    async with serve(settings) as url:
        clients = [await browser_session(url, cast[k])  # type: ignore[arg-type]
                   for k in ("csm", "desk", "admin", "csm", "desk")]
        replies = await asyncio.gather(*[
            c.post(f"/accounts/{aid}/health/override", data={
                "score": str(10 + 20 * n), "reason": f"call {n}", "expires_on": until,
                "csrf_token": csrf}) for n, (c, csrf) in enumerate(clients)])
        assert [r.status_code for r in replies] == [303] * 5, [r.text[:200] for r in replies]
    [current] = _active(sessions, aid)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(HealthOverride)) == 5
        state = s.get(AccountHealth, aid)
        assert state is not None and state.overridden
        assert (state.score, state.band) == (current.score, current.band)
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "health.override_set")) == 5


CSV = ("account,measure,value,measured_on\n"
       f"Globex <Health>,usage,42,{TODAY}\n"
       "Initech,nps,10,2026-11-30\n"
       "Nobody Inc,usage,10,2026-11-30\n"
       "Initech,usage,lots,2026-11-30\n"
       "Initech,usage,10,30/11/2026\n")


async def test_the_csv_upload_reports_rejects_by_line(
        settings: Settings, sessions: sessionmaker[Session], cast: dict[str, object]) -> None:
    async with serve(settings) as url:
        desk, csrf = await browser_session(url, cast["desk"])  # type: ignore[arg-type]
        r = await desk.get("/health")
        assert r.status_code == 200 and 'id="upload-measures"' in r.text
        for who in ("auditor", "manager"):
            other, other_csrf = await browser_session(url, cast[who])  # type: ignore[arg-type]
            r = await other.get("/health")
            assert r.status_code == 200 and "upload-measures" not in r.text, who
        r = await other.post("/health/measures", data={"csrf_token": other_csrf},
                             files={"file": ("m.csv", CSV, "text/csv")})
        assert r.status_code == 403

        assert (await desk.post("/health/measures", files={
            "file": ("m.csv", CSV, "text/csv")})).status_code in (400, 403)
        r = await desk.post("/health/measures", data={"csrf_token": csrf},
                            files={"file": ("m.csv", CSV, "text/csv")})
        assert r.status_code == 200, r.text
        assert "2 rows stored</strong> from m.csv; 3 rejected" in r.text
        rows = re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]*)</td></tr>', r.text)
        assert [int(n) for n, _ in rows] == [4, 5, 6]
        assert "unknown account" in rows[0][1] and "Nobody Inc" in rows[0][1]
        assert "bad number" in rows[1][1] and "bad date" in rows[2][1]

        # Problems with the file itself: said at the field, nothing stored.
        for files, status, words in (
                ({"file": ("m.csv", b"\xff\xfe\x00bad", "text/csv")}, 422, "not UTF-8"),
                ({"file": ("m.csv", "name,value\nx,1\n", "text/csv")}, 422, "needs the columns"),
                ({"file": ("", b"", "text/csv")}, 422, "choose a CSV")):
            r = await desk.post("/health/measures", data={"csrf_token": csrf}, files=files)
            assert r.status_code == status and words in r.text, (status, r.text[:300])
            assert "Nothing was stored" in r.text and 'aria-invalid="true"' in r.text
        big = "x" * (21 * 1024 * 1024)
        r = await desk.post("/health/measures", data={"csrf_token": csrf},
                            files={"file": ("m.csv", big, "text/csv")})
        assert r.status_code == 413 and "MB" in r.text
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AccountMeasure)) == 2


async def test_parallel_csv_uploads_store_each_row_once(
        settings: Settings, sessions: sessionmaker[Session], cast: dict[str, object]) -> None:
    async with serve(settings) as url:
        clients = [await browser_session(url, cast[k])  # type: ignore[arg-type]
                   for k in ("csm", "desk", "admin", "csm")]
        replies = await asyncio.gather(*[
            c.post("/health/measures", data={"csrf_token": csrf},
                   files={"file": (f"m{n}.csv", CSV, "text/csv")})
            for n, (c, csrf) in enumerate(clients)])
        assert [r.status_code for r in replies] == [200] * 4
        assert all("2 rows stored" in r.text for r in replies)
    with sessions() as s:
        keys = s.execute(select(AccountMeasure.account_id, AccountMeasure.measure,
                                AccountMeasure.measured_on)).all()
        assert len(keys) == len(set(keys)) == 2
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "health.measures_imported")) == 4


async def test_the_inbox_badge_counts_health_alerts(
        settings: Settings, sessions: sessionmaker[Session], cast: dict[str, object]) -> None:
    aid, other = cast["account_id"], cast["other_id"]
    with sessions.begin() as s:
        s.add_all([
            HealthTask(account_id=aid, day=TODAY, band="critical", previous_band="good",
                       score=20, assignee_id=cast["csm"].id),  # type: ignore[attr-defined]
            HealthTask(account_id=other, day=TODAY, band="at_risk", previous_band="good",
                       score=50, queue_role="csm"),
            HealthTask(account_id=other, day=TODAY - dt.timedelta(days=3), band="critical",
                       previous_band="at_risk", score=20, queue_role="csm",
                       done_at=dt.datetime.now(dt.UTC))])
    async with serve(settings) as url:
        csm, csrf = await browser_session(url, cast["csm"])  # type: ignore[arg-type]
        badge = await csm.get("/inbox/badge")
        assert 'aria-label="2 open tasks">2<' in badge.text, badge.text
        inbox = await csm.get("/inbox")
        assert 'aria-label="2 open tasks"' in inbox.text
        # Done takes it off the badge.
        task = re.search(r'action="/health/tasks/(\d+)/done"', inbox.text)
        assert task
        r = await csm.post(f"/health/tasks/{task.group(1)}/done", data={"csrf_token": csrf})
        assert r.status_code == 303
        assert 'aria-label="1 open tasks">1<' in (await csm.get("/inbox/badge")).text
        # Nobody else's badge counts the CSM's alerts.
        auditor, _ = await browser_session(url, cast["auditor"])  # type: ignore[arg-type]
        assert "badge" not in (await auditor.get("/inbox/badge")).text
        desk, _ = await browser_session(url, cast["desk"])  # type: ignore[arg-type]
        assert "badge" not in (await desk.get("/inbox/badge")).text
