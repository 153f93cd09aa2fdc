"""Customer health: the pure score; measures through the API and a CSV with a per-row report
of rejects; an override the recompute leaves alone until it expires; a band drop that makes
exactly one CSM task, audit row and mail however often (and however parallel) the recompute
runs; the nightly schedule the worker creates; who may read and write; parallel writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from email import message_from_bytes

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.health import recompute
from activities.mail import Mailer, SmtpConfig
from dealdesk.settings import Settings
from store.health import AccountMeasure, HealthOverride, HealthScore, HealthTask
from store.models import APPROVER_ROLES, ROLES, Account, AuditEvent, OutboxMessage
from tests.health_support import cast
from tests.support import replays, serve
from tests.test_mail import Inbox, smtp
from tests.web_support import POLICY, browser_session, token_client
from web.errors import Invalid
from web.services.policies import parse_source
from workflows.health import (
    SCHEDULE_ID,
    HealthRecomputeWorkflow,
    RecomputeInput,
    RecomputeResult,
)
from workflows.health_rules import GROUPS, band_of, check, normalise, score, worse

TODAY = dt.datetime.now(dt.UTC).date()
__all__ = ["cast", "smtp"]  # the fixtures, imported

GOOD = {"usage": 90, "support_tickets": 1, "nps": 50, "engagement": 80}
BAD = {"usage": 10, "support_tickets": 9, "nps": -80, "engagement": 10}


# --- the pure score -------------------------------------------------------------------------

def test_each_measure_is_normalised_to_0_100() -> None:
    assert normalise("usage", 73) == 73
    assert (normalise("support_tickets", 0), normalise("support_tickets", 3),
            normalise("support_tickets", 50)) == (100, 70, 0)
    assert (normalise("nps", -100), normalise("nps", 0), normalise("nps", 100)) == (0, 50, 100)
    assert (normalise("payment", 0), normalise("payment", 10),
            normalise("payment", 400)) == (100, 80, 0)
    assert check("nps", 101) and check("usage", float("nan")) and check("mood", 1)
    assert check("payment", 0) is None


def test_weighted_groups_and_bands() -> None:
    assert sum(w for w, _ in GROUPS.values()) == 100
    h = score({"usage": 90, "support_tickets": 1, "nps": 50, "payment": 0, "engagement": 60})
    assert h is not None
    # product 90×40 + support 90×20 + sentiment 75×20 + commercial (100+60)/2×20
    assert h.score == round((90 * 40 + 90 * 20 + 75 * 20 + 80 * 20) / 100) == 85
    assert h.band == "good" and h.components["weights"]["product"] == 40
    assert (band_of(70), band_of(69), band_of(40), band_of(39)) == (
        "good", "at_risk", "at_risk", "critical")


def test_missing_measures_reweight_the_rest() -> None:
    only_usage = score({"usage": 55})
    assert only_usage is not None and only_usage.score == 55
    assert only_usage.components["weights"] == {"product": 100}
    two = score({"usage": 100, "nps": -100})  # 40:20 → 2/3 and 1/3
    assert two is not None and two.score == 67 and two.band == "at_risk"
    assert score({}) is None
    assert worse("critical", "good") and worse("at_risk", "good")
    assert not worse("good", "at_risk") and not worse("critical", None)


def test_a_csm_is_a_role_of_its_own_and_never_an_approver(
        sessions: sessionmaker[Session]) -> None:
    assert "csm" in ROLES and "csm" not in APPROVER_ROLES
    with sessions() as s, pytest.raises(Invalid, match="csm"):
        parse_source(s, POLICY.replace("role: finance", "role: csm", 1))


# --- measures, overrides, roles through the real app -----------------------------------------

def _rows(values: dict[str, float], day: dt.date = TODAY) -> list[dict[str, object]]:
    return [{"measure": m, "value": v, "measured_on": str(day)} for m, v in values.items()]


async def test_measures_by_api_and_csv_with_a_report_of_rejects(
        settings: Settings, sessions: sessionmaker[Session], cast: dict[str, object]) -> None:
    aid = cast["account_id"]
    async with serve(settings) as url:
        csm, auditor, rep, desk = [await token_client(url, cast[k])  # type: ignore[arg-type]
                                   for k in ("csm", "auditor", "rep", "desk")]
        r = await csm.put(f"/api/v1/accounts/{aid}/measures", json=_rows(GOOD))
        assert r.status_code == 200 and r.json() == {"stored": 4}, r.text
        # One bad row: nothing of the request is stored, and the 422 names it.
        r = await csm.put(f"/api/v1/accounts/{aid}/measures", json=[
            {"measure": "usage", "value": 11, "measured_on": "2026-01-01"},
            {"measure": "nps", "value": 300, "measured_on": "2026-01-01"}])
        assert r.status_code == 422 and r.json()["field"] == "1.value", r.text
        assert "row 1" in r.json()["detail"]
        r = await csm.put("/api/v1/accounts/999999/measures", json=_rows(GOOD))
        assert r.status_code == 404, r.text
        r = await auditor.put(f"/api/v1/accounts/{aid}/measures", json=_rows(GOOD))
        assert r.status_code == 403 and r.json()["detail"], r.text
        assert (await rep.get(f"/api/v1/accounts/{aid}/health")).status_code == 403
        assert (await rep.get("/health")).status_code == 403
        assert (await auditor.get(f"/api/v1/accounts/{aid}/health")).status_code == 200
        assert (await auditor.post(f"/api/v1/accounts/{aid}/health/override", json={
            "score": 10, "reason": "x",
            "expires_at": "2099-01-01T00:00:00Z"})).status_code == 403
        assert (await csm.get("/api/v1/accounts/0/health")).status_code == 422

        csv = ("account,measure,value,measured_on\n"
               f"Globex <Health>,usage,42,{TODAY}\n"
               f"{cast['other_id']},nps,10,2026-11-30\n"
               "Nobody Inc,usage,10,2026-11-30\n"
               "Initech,usage,lots,2026-11-30\n"
               "Initech,usage,10,30/11/2026\n"
               "Initech,mood,10,2026-11-30\n"
               "Initech,usage,250,2026-11-30\n")
        r = await desk.post("/api/v1/measures.csv", content=csv,
                            headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["accepted"] == 2
        assert [(x["row"], x["problem"].split(" ")[0]) for x in report["rejected"]] == [
            (4, "unknown"), (5, "bad"), (6, "bad"), (7, "unknown"), (8, "usage")]
        assert "Nobody Inc" in report["rejected"][0]["problem"]
        assert "number" in report["rejected"][1]["problem"]
        assert "date" in report["rejected"][2]["problem"]
        # A re-import of the same row (as a multipart upload) updates it, never duplicates.
        r = await desk.post("/api/v1/measures.csv", files={"file": (
            "m.csv", f"account,measure,value,measured_on\nGlobex <Health>,usage,43,{TODAY}\n",
            "text/csv")})
        assert r.status_code == 200 and r.json() == {"accepted": 1, "rejected": []}, r.text
        r = await auditor.post("/api/v1/measures.csv", content=csv)
        assert r.status_code == 403
        h = (await csm.get(f"/api/v1/accounts/{aid}/health")).json()
        assert {m["measure"]: (m["value"], m["source"]) for m in h["measures"]}["usage"] == (
            43, "csv")
        assert h["score"] is None and h["trend"] == []
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AccountMeasure).where(
            AccountMeasure.account_id == aid)) == 4


async def test_parallel_measure_writes_for_one_account(
        settings: Settings, sessions: sessionmaker[Session], cast: dict[str, object]) -> None:
    aid = cast["account_id"]
    async with serve(settings) as url:
        csm = await token_client(url, cast["csm"])  # type: ignore[arg-type]
        days = [TODAY - dt.timedelta(days=n) for n in range(6)]
        replies = await asyncio.gather(*[
            csm.put(f"/api/v1/accounts/{aid}/measures", json=_rows(GOOD, day))
            for day in days + days])  # each day twice, at once
        assert [r.status_code for r in replies] == [200] * 12, [r.text for r in replies]
    with sessions() as s:
        keys = s.execute(select(AccountMeasure.measure, AccountMeasure.measured_on).where(
            AccountMeasure.account_id == aid)).all()
        assert len(keys) == len(set(keys)) == 4 * 6


def _put(sessions: sessionmaker[Session], account_id: int, values: dict[str, float]) -> None:
    from store.health import upsert_measure
    with sessions.begin() as s:
        for m, v in values.items():
            upsert_measure(s, account_id, m, v, TODAY, "api")


async def test_an_override_survives_the_recompute_until_it_expires(
        settings: Settings, sessions: sessionmaker[Session], cast: dict[str, object]) -> None:
    aid = cast["account_id"]
    assert isinstance(aid, int)
    _put(sessions, aid, GOOD)
    assert recompute(sessions, RecomputeInput()) == RecomputeResult(1, 0)
    async with serve(settings) as url:
        csm = await token_client(url, cast["csm"])  # type: ignore[arg-type]
        r = await csm.post(f"/api/v1/accounts/{aid}/health/override", json={
            "score": 35, "reason": "CFO said they will churn",
            "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat()})
        assert r.status_code == 200, r.text
        assert (r.json()["score"], r.json()["band"], r.json()["overridden"]) == (
            35, "critical", True)
        bad = await csm.post(f"/api/v1/accounts/{aid}/health/override", json={
            "score": 35, "reason": "x", "expires_at": "2020-01-01T00:00:00Z"})
        assert bad.status_code == 422 and bad.json()["field"] == "expires_at"
        recompute(sessions, RecomputeInput())
        h = (await csm.get(f"/api/v1/accounts/{aid}/health")).json()
        assert (h["score"], h["band"], h["overridden"]) == (35, "critical", True)
        assert [t["score"] for t in h["trend"]] == [85]  # the computed score, still recorded
        # Once it has expired the recompute scores normally and ends the override.
        with sessions.begin() as s:
            s.execute(update(HealthOverride).values(
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
        recompute(sessions, RecomputeInput())
        h = (await csm.get(f"/api/v1/accounts/{aid}/health")).json()
        assert (h["score"], h["band"], h["overridden"], h["override"]) == (
            85, "good", False, None)
        page = await (await browser_session(url, cast["csm"]))[0].get(  # type: ignore[arg-type]
            f"/accounts/{aid}/health")
        assert page.status_code == 200 and "Globex &lt;Health&gt;" in page.text
        assert "<polyline" in page.text and "<circle" in page.text
        assert "<script" not in page.text.split("</header>")[1]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "health.override_expired")) == 1
        # the drop to the override's band was a person's decision: no task for it
        assert s.scalar(select(func.count()).select_from(HealthTask)) == 0


# --- the recompute through Temporal -----------------------------------------------------------

async def _run(client: Client, settings: Settings, workflow_id: str = "") -> RecomputeResult:
    result: RecomputeResult = await client.execute_workflow(
        HealthRecomputeWorkflow.run, RecomputeInput(),
        id=workflow_id or f"{settings.workflow_prefix}health-test-{uuid.uuid4().hex[:8]}",
        task_queue=settings.task_queue)
    return result


async def test_a_band_drop_makes_exactly_one_task_audit_row_and_mail(
        settings: Settings, sessions: sessionmaker[Session], client: Client, live_url: str,
        cast: dict[str, object]) -> None:
    aid = cast["account_id"]
    assert isinstance(aid, int)
    _put(sessions, aid, GOOD)
    assert await _run(client, settings) == RecomputeResult(1, 0)
    _put(sessions, aid, BAD)
    dropped = f"{settings.workflow_prefix}health-test-drop"
    results = [await _run(client, settings, dropped), *[await _run(client, settings)
                                                          for _ in range(2)]]
    # The run that found the drop replays on today's code (saved with DEALDESK_SAVE_HISTORY).
    await replays(client, dropped, [HealthRecomputeWorkflow])
    results += await asyncio.gather(*[_run(client, settings) for _ in range(3)])
    assert [r.drops for r in results] == [1, 0, 0, 0, 0, 0]
    admin = await token_client(live_url, cast["admin"])  # type: ignore[arg-type]
    r = await admin.post("/api/v1/health/recompute")
    assert r.status_code == 200 and r.json() == {"scored": 1, "drops": 0}, r.text
    csm_api = await token_client(live_url, cast["csm"])  # type: ignore[arg-type]
    assert (await csm_api.post("/api/v1/health/recompute")).status_code == 403
    with sessions() as s:
        tasks = s.scalars(select(HealthTask)).all()
        assert [(t.account_id, t.band, t.previous_band, t.assignee_id) for t in tasks] == [
            (aid, "critical", "good", cast["csm"].id)]  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "health.band_dropped",
            AuditEvent.entity == f"account:{aid}")) == 1
        mails = s.scalars(select(OutboxMessage).where(
            OutboxMessage.message_key.startswith(f"health-{aid}-"))).all()
        assert [m.to_addr for m in mails] == [cast["csm"].email]  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(HealthScore)) == 1
        assert s.get(Account, aid) is not None

    # The CSM's inbox lists it; Done closes it (a CSRF form).
    browser, csrf = await browser_session(live_url, cast["csm"])  # type: ignore[arg-type]
    inbox = await browser.get("/inbox")
    assert "Customer health alerts" in inbox.text and "Globex &lt;Health&gt;" in inbox.text
    m = re.search(r'action="/health/tasks/(\d+)/done"', inbox.text)
    assert m
    assert (await browser.post(f"/health/tasks/{m.group(1)}/done")).status_code in (400, 403)
    r = await browser.post(f"/health/tasks/{m.group(1)}/done", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert "Customer health alerts" not in (await browser.get("/inbox")).text
    listing = await browser.get("/health")
    assert listing.status_code == 200 and "critical" in listing.text.lower()


def test_a_drop_mails_the_csm_over_smtp_once(sessions: sessionmaker[Session],
                                             cast: dict[str, object],
                                             smtp: tuple[Inbox, int]) -> None:
    """The alert is delivered, not only queued; re-runs deliver nothing more."""
    inbox, port = smtp
    mailer = Mailer(sessions, SmtpConfig("127.0.0.1", port, sender="dealdesk@test"))
    aid = cast["account_id"]
    assert isinstance(aid, int)
    _put(sessions, aid, GOOD)
    recompute(sessions, RecomputeInput(), mailer=mailer)
    _put(sessions, aid, BAD)
    assert [recompute(sessions, RecomputeInput(), mailer=mailer).drops
            for _ in range(3)] == [1, 0, 0]
    assert [message_from_bytes(m)["To"] for m in inbox.received] == [
        cast["csm"].email]  # type: ignore[attr-defined]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.sent_at.is_(None))) == 0


async def test_the_worker_creates_the_nightly_schedule(
        settings: Settings, client: Client, worker: str) -> None:
    handle = client.get_schedule_handle(f"{settings.workflow_prefix}{SCHEDULE_ID}")
    for _ in range(100):
        try:
            described = await handle.describe()
            break
        except Exception:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("no health schedule after the worker started")
    # The server keeps the cron expression as a calendar: 02:00 every day.
    [calendar] = described.schedule.spec.calendars
    assert ([r.start for r in calendar.hour], [r.start for r in calendar.minute]) == ([2], [0])
    action = described.schedule.action
    assert getattr(action, "workflow", None) == "HealthRecomputeWorkflow"
    assert getattr(action, "task_queue", None) == worker
    await handle.delete()


def test_the_demo_seeds_a_drop_to_critical_with_its_csm_alert_once(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    from dealdesk.demo import STEPS, seed_records
    from dealdesk.demo.health import DROPS, seed_health_records

    assert "account health with a CSM alert" in [step.what for step in STEPS]
    assert seed_records(sessions)
    seed_health_records(sessions, settings)
    seed_health_records(sessions, settings)
    with sessions() as s:
        [task] = s.scalars(select(HealthTask)).all()
        assert (task.account.name, task.band, task.previous_band, task.day) == (
            DROPS, "critical", "good", TODAY)
        assert task.assignee_id is not None
        assert s.scalar(select(func.count()).select_from(HealthScore)) == 2 * 8
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "health.band_dropped")) == 1


@pytest.mark.postgres
def test_upserts_and_one_task_per_drop_on_postgres(
        sessions: sessionmaker[Session], cast: dict[str, object]) -> None:
    aid = cast["account_id"]
    assert isinstance(aid, int)
    _put(sessions, aid, GOOD)
    _put(sessions, aid, GOOD)  # the same keys again: updated, not duplicated
    assert recompute(sessions, RecomputeInput()) == RecomputeResult(1, 0)
    _put(sessions, aid, BAD)
    assert [recompute(sessions, RecomputeInput()).drops for _ in range(3)] == [1, 0, 0]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AccountMeasure)) == 4
        assert s.scalar(select(func.count()).select_from(HealthTask)) == 1
        assert s.scalar(select(func.count()).select_from(HealthScore)) == 1
