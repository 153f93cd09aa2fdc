"""Subscriptions and renewals on the real app: a quote won through the API becomes a
subscription the API lists and reads; the renewals window, its summary and gross revenue
retention; who sees and who changes; the changes' validation (422 naming the field, nothing
stored); the pages; and parallel reads from several users."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from dealdesk.settings import Settings
from store.db import write_lock
from store.health import AccountHealth
from store.models import Quote, User
from store.starts import WorkflowStart
from store.subscriptions import (
    Subscription,
    SubscriptionAddOn,
    SubscriptionTerm,
    renewal_workflow_id,
)
from tests.support import eventually, make_account, make_user
from tests.web_support import browser_session, token_client
from workflows.renewal_messages import (
    ENDED,
    INVALID,
    AddOn,
    Cancel,
    ChangeTerm,
    RenewalInput,
    RenewalState,
    RenewEarly,
)

NET = 1_200_000


@dataclass
class Crew:
    rep: User
    rep2: User
    desk: User
    csm: User
    auditor: User
    finance: User
    account_id: int


@contextlib.contextmanager
def writing(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A write transaction that queues for SQLite's lock up front (the worker writes too)."""
    with sessions() as s:
        write_lock(s)
        yield s
        s.commit()


@pytest.fixture
def crew(sessions: sessionmaker[Session]) -> Crew:
    with writing(sessions) as s:
        c = Crew(rep=make_user(s, "Rae Rep", "rep"), rep2=make_user(s, "Ray Other", "rep"),
                 desk=make_user(s, "Dee Desk", "deal_desk"), csm=make_user(s, "Cy Csm", "csm"),
                 auditor=make_user(s, "Aud Itor", "auditor"),
                 finance=make_user(s, "Fay Finance", "finance"),
                 account_id=make_account(s, "Initech").id)
        s.expunge_all()
    return c


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


async def won_subscription(live_url: str, sessions: sessionmaker[Session], crew: Crew,
                           title: str = "Initech platform", net: int = NET) -> int:
    """A quote through its approval chain (the chain has its own tests), won through the
    API as its owner would: the subscription it leaves."""
    with writing(sessions) as s:
        q = Quote(account_id=crew.account_id, owner_id=crew.rep.id, title=title,
                  currency="USD", list_amount=net, net_amount=net, cost_amount=net // 3,
                  term_months=12, status="approved", billing="annual")
        s.add(q)
        s.flush()
        qid = q.id
    rep = await token_client(live_url, crew.rep)
    r = await rep.post(f"/api/v1/quotes/{qid}/won")
    assert r.status_code == 202, r.text
    await rep.aclose()
    with sessions() as s:
        sub_id = s.scalar(select(Subscription.id).where(Subscription.quote_id == qid))
    assert sub_id is not None
    return sub_id


def renew_in(sessions: sessionmaker[Session], sub_id: int, days: int) -> None:
    """Move the current term so that it renews ``days`` from today (a 12-month term)."""
    with writing(sessions) as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None
        end = today() + dt.timedelta(days=days - 1)
        sub.term_end, sub.term_start = end, end - dt.timedelta(days=364)
        term = s.scalar(select(SubscriptionTerm).where(
            SubscriptionTerm.subscription_id == sub_id, SubscriptionTerm.number == 1))
        assert term is not None
        term.start, term.end = sub.term_start, sub.term_end


def snapshot(sessions: sessionmaker[Session], sub_id: int) -> tuple[object, ...]:
    with sessions() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None
        addons = s.scalar(select(func.count()).select_from(SubscriptionAddOn))
        return (sub.term_end, sub.notice_days, sub.term_end_action, sub.uplift_pct, sub.status,
                sub.cancel_reason, sub.arr, sub.term_number, addons)


async def test_a_won_quote_is_a_subscription_and_renews_in_its_window(
        live_url: str, sessions: sessionmaker[Session], crew: Crew, settings: Settings) -> None:
    sub_id = await won_subscription(live_url, sessions, crew)
    rep = await token_client(live_url, crew.rep)
    listed = (await rep.get("/api/v1/subscriptions")).json()
    assert [(x["id"], x["arr"], x["term_months"], x["status"], x["currency"]) for x in listed] \
        == [(sub_id, NET, 12, "active", "USD")]
    first = listed[0]
    assert first["term_start"] == today().isoformat()
    assert first["renews_on"] == (dt.date.fromisoformat(first["term_end"])
                                  + dt.timedelta(days=1)).isoformat()
    assert (first["notice_days"], first["term_end_action"], first["health_band"],
            first["at_risk"]) == (30, "renew", None, False)
    one = (await rep.get(f"/api/v1/subscriptions/{sub_id}")).json()
    assert [(t["number"], t["arr"], t["outcome"]) for t in one["terms"]] == [(1, NET, None)]
    assert one["contract"]["quote_id"] == one["terms"][0]["quote_id"]
    assert one["contract"]["term_months"] == 12 and one["add_ons"] == []
    assert {p["role"] for p in one["contract"]["parties"]} >= {"customer", "provider"}
    provider = next(p for p in one["contract"]["parties"] if p["role"] == "provider")
    assert provider["name"] == settings.org_name  # our organisation, by its configured name
    assert one["contract"]["template"] is None  # won by hand: no contract template
    assert one["renewal_pricing"] == "uplift"
    assert (await rep.get("/api/v1/subscriptions?status=churned")).json() == []
    assert len((await rep.get("/api/v1/subscriptions?account=initech")).json()) == 1
    assert len((await rep.get(f"/api/v1/subscriptions?account={crew.account_id}")).json()) == 1
    bad = await rep.get("/api/v1/subscriptions?status=gone")
    assert bad.status_code == 422 and bad.json()["field"] == "status"
    for query, field in (("account=%00", "account"), ("account=0", "account"),
                         ("account=99999999999", "account"), ("limit=0", "limit"),
                         ("offset=-1", "offset")):
        bad = await rep.get(f"/api/v1/subscriptions?{query}")
        assert (bad.status_code, bad.json().get("field")) == (422, field), (query, bad.text)
    assert len((await rep.get("/api/v1/subscriptions?limit=1&offset=0")).json()) == 1
    assert (await rep.get("/api/v1/subscriptions?limit=1&offset=1")).json() == []

    # A year away: in no window.
    r = (await rep.get("/api/v1/renewals?within_days=120")).json()
    assert r["within_days"] == 120 and r["renewals"] == [] and r["summary"]["count"] == 0
    assert r["summary"]["grr"] is None

    renew_in(sessions, sub_id, 45)
    for days, expected in ((30, []), (60, [sub_id]), (90, [sub_id]), (120, [sub_id])):
        r = (await rep.get(f"/api/v1/renewals?within_days={days}")).json()
        assert [x["id"] for x in r["renewals"]] == expected, days
    r = (await rep.get("/api/v1/renewals?within_days=60")).json()
    assert r["renewals"][0]["days_to_renewal"] == 45
    assert (r["page"], r["limit"], r["pages"], r["total"], r["next"], r["prev"]) == (
        1, 50, 1, 1, None, None)
    assert r["summary"] == {"count": 1, "arr": NET, "arr_at_risk": 0,
                            "currency_note": "amounts are minor units of USD", "grr": None}

    # Its account turns critical: the renewal is at risk.
    # Past terms: renewed 1000 and auto-renewed 500 of 2000 ended in the last 12 months
    # (one churned at 500); one renewed 400 days ago is outside the window.
    with writing(sessions) as s:
        s.add(AccountHealth(account_id=crew.account_id, score=20, band="critical"))
        quote_id = s.get(Subscription, sub_id).quote_id  # type: ignore[union-attr]
        for number, ended, arr, outcome in ((101, 100, 1000, "renewed"),
                                            (102, 200, 500, "auto_renewed"),
                                            (103, 50, 500, "churned"),
                                            (104, 400, 9999, "renewed"),
                                            (105, 10, 7777, None)):
            end = today() - dt.timedelta(days=ended)
            s.add(SubscriptionTerm(subscription_id=sub_id, number=number, quote_id=quote_id,
                                   start=end - dt.timedelta(days=364), end=end, arr=arr,
                                   outcome=outcome))
    r = (await rep.get("/api/v1/renewals?within_days=90")).json()
    assert r["summary"]["count"] == 1 and r["summary"]["arr_at_risk"] == NET
    assert r["summary"]["grr"] == 0.75
    assert (r["renewals"][0]["health_band"], r["renewals"][0]["at_risk"]) == ("critical", True)

    for bad_days in ("45", "0", "365", "abc"):
        bad = await rep.get(f"/api/v1/renewals?within_days={bad_days}")
        assert bad.status_code == 422, bad_days
        assert bad.json()["field"] == "within_days"
    assert "30, 60, 90, 120" in (await rep.get("/api/v1/renewals?within_days=45")).json()[
        "detail"]
    await rep.aclose()


async def test_who_sees_and_who_changes(live_url: str, sessions: sessionmaker[Session],
                                        crew: Crew) -> None:
    sub_id = await won_subscription(live_url, sessions, crew)
    renew_in(sessions, sub_id, 45)
    other = await token_client(live_url, crew.rep2)
    assert (await other.get(f"/api/v1/subscriptions/{sub_id}")).status_code == 404
    assert (await other.get("/api/v1/subscriptions")).json() == []
    assert (await other.get("/api/v1/renewals?within_days=90")).json()["summary"]["count"] == 0
    r = await other.post(f"/api/v1/subscriptions/{sub_id}/cancel", json={"reason": "nope"})
    assert r.status_code == 404
    assert (await other.get("/api/v1/subscriptions/99999")).status_code == 404
    assert (await other.get("/api/v1/subscriptions/0")).status_code == 422

    before = snapshot(sessions, sub_id)
    for user in (crew.auditor, crew.finance):
        reader = await token_client(live_url, user)
        assert (await reader.get(f"/api/v1/subscriptions/{sub_id}")).status_code == 200
        renewals = (await reader.get("/api/v1/renewals?within_days=60")).json()
        assert [x["id"] for x in renewals["renewals"]] == [sub_id]
        for method, path, body in (
                ("POST", "cancel", {"reason": "budget cut"}), ("POST", "renew-early", None),
                ("PATCH", "term", {"notice_days": 10}),
                ("POST", "add-ons", {"description": "SSO", "arr_delta": 1000})):
            r = await reader.request(method, f"/api/v1/subscriptions/{sub_id}/{path}",
                                     json=body)
            assert r.status_code == 403, (user.name, path, r.text)
        await reader.aclose()

    owner = await token_client(live_url, crew.rep)
    desk = await token_client(live_url, crew.desk)
    start = today() + dt.timedelta(days=44) - dt.timedelta(days=364)
    for client, method, path, body, field in (
            (owner, "PATCH", "term", {"notice_days": 400}, "notice_days"),
            (owner, "PATCH", "term", {"notice_days": -1}, "notice_days"),
            (desk, "PATCH", "term", {"term_end": (start + dt.timedelta(days=20)).isoformat(),
                                     "notice_days": 30}, "notice_days"),
            (desk, "PATCH", "term", {"term_end_action": "renewish"}, "term_end_action"),
            (desk, "PATCH", "term", {"term_end": "2026-13-01"}, "term_end"),
            (desk, "PATCH", "term", {"term_end": "soon"}, "term_end"),
            (desk, "PATCH", "term", {"term_end": start.isoformat()}, "term_end"),
            (desk, "PATCH", "term", {"uplift_pct": "101"}, "uplift_pct"),
            (desk, "PATCH", "term", {"uplift_pct": "NaN"}, "uplift_pct"),
            (desk, "PATCH", "term", {"uplift_pct": "1e-999999999"}, "uplift_pct"),
            (desk, "PATCH", "term", {"renewal_pricing": "cheapest"}, "renewal_pricing"),
            (desk, "PATCH", "term", {}, "term_end"),
            (owner, "POST", "cancel", {}, "reason"),
            (owner, "POST", "cancel", {"reason": "  no "}, "reason"),
            (desk, "POST", "add-ons", {"description": "", "arr_delta": 100}, "description"),
            (desk, "POST", "add-ons", {"description": "SSO", "arr_delta": 0}, "arr_delta"),
            (desk, "POST", "add-ons", {"description": "SSO", "arr_delta": 2**53},
             "arr_delta")):
        r = await client.request(method, f"/api/v1/subscriptions/{sub_id}/{path}", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, (body, r.json())
    assert snapshot(sessions, sub_id) == before
    for c in (other, owner, desk):
        await c.aclose()


async def test_the_pages(live_url: str, sessions: sessionmaker[Session], crew: Crew) -> None:
    sub_id = await won_subscription(live_url, sessions, crew)
    renew_in(sessions, sub_id, 45)
    with writing(sessions) as s:
        s.add(AccountHealth(account_id=crew.account_id, score=20, band="critical"))
    for user in (crew.rep, crew.desk):
        web, csrf = await browser_session(live_url, user)
        page = await web.get("/renewals?within_days=60")
        assert page.status_code == 200
        html = page.text
        assert f'id="sub-{sub_id}"' in html and "<svg" in html and "Initech platform" in html
        assert 'href="/renewals"' in html and "at risk" in html and "health-critical" in html
        assert (await web.get("/renewals?within_days=30")).text.count("Nothing renews") == 1
        one = await web.get(f"/subscriptions/{sub_id}")
        assert one.status_code == 200, one.text
        assert "Renewal history" in one.text and "Change the term" in one.text
        assert 'id="process-state"' in one.text
        assert re.search(r'id="renewal-pricing">uplift <small', one.text), one.text
        assert 'id="contract-template"' in one.text and 'name="renewal_pricing"' in one.text
        # A refused change: the page again, the problem at its field, nothing stored.
        before = snapshot(sessions, sub_id)
        bad = await web.post(f"/subscriptions/{sub_id}/term", data={
            "csrf_token": csrf, "notice_days": "999"})
        assert bad.status_code == 422
        assert re.search(r'aria-invalid="true"', bad.text)
        assert "notice_days must be from 0 to 365" in bad.text
        bad = await web.post(f"/subscriptions/{sub_id}/term", data={
            "csrf_token": csrf, "renewal_pricing": "cheapest"})
        assert bad.status_code == 422
        assert "renewal_pricing must be one of uplift, list, same" in bad.text
        bad = await web.post(f"/subscriptions/{sub_id}/cancel", data={"csrf_token": csrf})
        assert bad.status_code == 422 and "say why it is cancelled" in bad.text
        bad = await web.post(f"/subscriptions/{sub_id}/add-ons", data={
            "csrf_token": csrf, "description": "SSO", "arr_delta": "lots"})
        assert bad.status_code == 422 and 'id="err-addon.arr_delta"' in bad.text
        assert snapshot(sessions, sub_id) == before
        await web.aclose()
    web, _ = await browser_session(live_url, crew.rep2)
    empty = await web.get("/renewals")
    assert "Nothing renews within 90 days" in empty.text and "<svg" in empty.text
    assert (await web.get(f"/subscriptions/{sub_id}")).status_code == 404
    await web.aclose()
    web, _ = await browser_session(live_url, crew.auditor)
    page = await web.get(f"/subscriptions/{sub_id}")
    assert page.status_code == 200 and "Change the term" not in page.text
    await web.aclose()


async def test_parallel_reads_from_several_users(
        live_url: str, sessions: sessionmaker[Session], crew: Crew) -> None:
    sub_id = await won_subscription(live_url, sessions, crew)
    renew_in(sessions, sub_id, 20)
    users = [crew.rep, crew.rep2, crew.desk, crew.csm, crew.auditor]
    clients: list[httpx.AsyncClient] = [await token_client(live_url, u) for u in users]
    calls = [clients[n % len(clients)].get(
        "/api/v1/renewals?within_days=30" if n % 2 else "/api/v1/subscriptions")
        for n in range(20)]
    answers = await asyncio.gather(*calls)
    assert [a.status_code for a in answers] == [200] * 20
    seen = {n % len(clients): a.json() for n, a in enumerate(answers) if n % 2}
    assert [seen[n]["summary"]["count"] for n in range(len(users))] == [1, 0, 1, 1, 1]
    for c in clients:
        await c.aclose()


async def test_the_demo_seeds_renewals_inside_90_days_once(
        live_url: str, sessions: sessionmaker[Session], settings: Settings,
        client: Client) -> None:
    from dealdesk.demo import STEPS, seed_records
    from dealdesk.demo.health import seed_health_records
    from dealdesk.demo.renewals import RENEWALS, seed_renewals

    assert "subscriptions renewing within 90 days" in [step.what for step in STEPS]
    assert seed_records(sessions)
    await asyncio.to_thread(seed_health_records, sessions, settings)
    await seed_renewals(sessions, client, settings)
    await seed_renewals(sessions, client, settings)
    with sessions() as s:
        desk = s.scalars(select(User).where(User.email == "dealdesk@demo.test")).one()
        s.expunge(desk)
        assert s.scalar(select(func.count()).select_from(Subscription)) == len(RENEWALS)
    desk_api = httpx.AsyncClient(base_url=live_url, timeout=30)
    r = await desk_api.post("/api/v1/auth/token", json={"email": desk.email,
                                                        "password": "demo"})
    desk_api.headers["Authorization"] = f"Bearer {r.json()['token']}"
    r = (await desk_api.get("/api/v1/renewals?within_days=90")).json()
    assert [(x["account"], x["days_to_renewal"], x["at_risk"]) for x in r["renewals"]] == [
        ("Acme Corporation", 45, False), ("Umbrella Health", 70, True)]
    assert r["renewals"][1]["health_band"] == "critical"
    assert r["summary"]["arr_at_risk"] == 4_800_000
    # Each renewal process follows its moved term.
    for row in r["renewals"]:
        handle = client.get_workflow_handle(
            renewal_workflow_id(settings.workflow_prefix, row["id"]))
        state = await handle.query("state", result_type=RenewalState)
        assert state.renews_on == row["renews_on"]
    await desk_api.aclose()


@workflow.defn(name="RenewalWorkflow", sandboxed=False)
class StubRenewal:
    """Stands in for RenewalWorkflow: records each Update and answers as it would, so the web
    side's wiring (update names, payloads, refusals, the state query) is tested on its own."""

    def __init__(self) -> None:
        self.calls: list[list[object]] = []
        self.sub_id = 0

    @workflow.run
    async def run(self, inp: RenewalInput) -> None:
        self.sub_id = inp.subscription_id
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def state(self) -> RenewalState:
        return RenewalState(self.sub_id, 1, "active", "2030-01-01", None, None, [])

    @workflow.query
    def seen(self) -> list[list[object]]:
        return self.calls

    def _took(self, name: str, arg: object) -> RenewalState:
        self.calls.append([name, dataclasses.asdict(arg)])  # type: ignore[call-overload]
        return self.state()

    @workflow.update(name="change_term")
    async def change_term(self, change: ChangeTerm) -> RenewalState:
        if change.uplift_pct == "42":
            raise ApplicationError("the stub refuses 42", type=INVALID)
        return self._took("change_term", change)

    @workflow.update(name="cancel")
    async def cancel(self, cancel: Cancel) -> RenewalState:
        if cancel.reason == "too late":
            raise ApplicationError("this subscription has churned", type=ENDED)
        return self._took("cancel", cancel)

    @workflow.update(name="renew_early")
    async def renew_early(self, renew: RenewEarly) -> RenewalState:
        return self._took("renew_early", renew)

    @workflow.update(name="add_on")
    async def add_on(self, add_on: AddOn) -> RenewalState:
        return self._took("add_on", add_on)


async def test_changes_reach_the_renewal_process_as_updates(
        live_url: str, sessions: sessionmaker[Session], settings: Settings, client: Client,
        crew: Crew) -> None:
    sub_id = await won_subscription(live_url, sessions, crew)
    wid = renewal_workflow_id(settings.workflow_prefix, sub_id)

    def started() -> bool:
        with sessions() as s:
            return s.scalar(select(WorkflowStart.started_at).where(
                WorkflowStart.workflow_id == wid)) is not None
    await eventually(started, timeout=30)
    await client.get_workflow_handle(wid).terminate("replaced by the test's stub")
    queue = f"stub-{settings.task_queue}"
    async with Worker(client, task_queue=queue, workflows=[StubRenewal]):
        handle = await client.start_workflow(
            "RenewalWorkflow", RenewalInput(sub_id, 1), id=wid, task_queue=queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
        desk = await token_client(live_url, crew.desk)
        owner = await token_client(live_url, crew.rep)
        base = f"/api/v1/subscriptions/{sub_id}"
        r = await desk.patch(f"{base}/term", json={"notice_days": 60, "uplift_pct": "5.50"})
        assert r.status_code == 200, r.text
        assert r.json()["state"]["subscription_id"] == sub_id
        assert r.json()["subscription"]["id"] == sub_id
        for _ in range(2):
            r = await owner.post(f"{base}/add-ons", json={"description": " SSO ",
                                                          "arr_delta": 120_000},
                                 headers={"Idempotency-Key": "sso-1"})
            assert r.status_code == 200, r.text
        r = await owner.post(f"{base}/add-ons", json={"description": "Audit log",
                                                      "arr_delta": 1})
        assert r.status_code == 200, r.text
        assert (await owner.post(f"{base}/renew-early")).status_code == 200
        r = await owner.post(f"{base}/cancel", json={"reason": " budget cut "})
        assert r.status_code == 200, r.text
        refused = await desk.patch(f"{base}/term", json={"uplift_pct": "42"})
        assert (refused.status_code, refused.json()["detail"]) == (422, "the stub refuses 42")
        ended = await owner.post(f"{base}/cancel", json={"reason": "too late"})
        assert (ended.status_code, ended.json()["detail"]) == (
            409, "this subscription has churned")
        # The page: the process's state, and a form's change as the same Update.
        web, csrf = await browser_session(live_url, crew.rep)
        page = await web.get(f"/subscriptions/{sub_id}")
        assert re.search(r'id="process-state">Term 1', page.text), page.text
        r = await web.post(f"/subscriptions/{sub_id}/add-ons", data={
            "csrf_token": csrf, "description": "Sandbox", "arr_delta": "1,200.50",
            "key": "form-1"})
        assert r.status_code == 303, r.text
        calls = await handle.query("seen")
        for c in (desk, owner, web):
            await c.aclose()
        await handle.terminate("done")
    names = [c[0] for c in calls]
    assert names == ["change_term", "add_on", "add_on", "add_on", "renew_early", "cancel",
                     "add_on"]
    assert calls[0][1] == {"by_user_id": crew.desk.id, "term_end": None, "notice_days": 60,
                           "term_end_action": None, "uplift_pct": "5.5",
                           "renewal_pricing": None}
    first, again, other = (c[1] for c in calls[1:4])
    assert (first["description"], first["arr_delta"], first["by_user_id"]) == (
        "SSO", 120_000, crew.rep.id)
    assert first["key"] == again["key"] != other["key"]
    assert calls[5][1] == {"by_user_id": crew.rep.id, "reason": "budget cut"}
    assert (calls[6][1]["description"], calls[6][1]["arr_delta"]) == ("Sandbox", 120_050)


async def test_changes_through_the_live_renewal_process(
        live_url: str, sessions: sessionmaker[Session], crew: Crew) -> None:
    sub_id = await won_subscription(live_url, sessions, crew)
    owner = await token_client(live_url, crew.rep)
    desk = await token_client(live_url, crew.desk)
    base = f"/api/v1/subscriptions/{sub_id}"
    assert (await desk.get(base)).json()["renewal_pricing"] == "uplift"  # the default
    r = await desk.patch(f"{base}/term", json={
        "notice_days": 60, "term_end_action": "evergreen", "uplift_pct": "5.5",
        "renewal_pricing": "list"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"]["subscription_id"], body["state"]["term_number"]) == (sub_id, 1)
    assert (body["subscription"]["notice_days"], body["subscription"]["term_end_action"],
            body["subscription"]["uplift_pct"], body["subscription"]["renewal_pricing"]) == (
        60, "evergreen", "5.5", "list")
    with sessions() as s:
        sub = s.get(Subscription, sub_id)
        assert sub is not None
        assert (sub.notice_days, sub.term_end_action, sub.uplift_pct,
                sub.renewal_pricing) == (60, "evergreen", "5.5", "list")
    # An add-on retried with the same Idempotency-Key is added once.
    for _ in range(2):
        r = await owner.post(f"{base}/add-ons", json={"description": "SSO",
                                                      "arr_delta": 120_000},
                             headers={"Idempotency-Key": "sso-1"})
        assert r.status_code == 200, r.text
    assert [a["description"] for a in r.json()["subscription"]["add_ons"]] == ["SSO"]
    assert r.json()["subscription"]["arr"] == NET + 120_000

    r = await owner.post(f"{base}/cancel", json={"reason": "budget cut"})
    assert r.status_code == 200, r.text
    assert (r.json()["subscription"]["status"], r.json()["subscription"]["cancel_reason"],
            r.json()["state"]["status"]) == ("cancelling", "budget cut", "cancelling")
    # Renewing a cancelled subscription early is the process's own refusal: a 422.
    r = await owner.post(f"{base}/renew-early")
    assert r.status_code == 422 and "can't renew early" in r.json()["detail"]
    # The page shows the process's state (the worker answers its query).
    web, _ = await browser_session(live_url, crew.rep)
    page = await web.get(f"/subscriptions/{sub_id}")
    assert page.status_code == 200 and "Process state unavailable" not in page.text
    assert re.search(r'id="process-state">Term 1', page.text)
    assert "budget cut" in page.text and "SSO" in page.text

    # Another subscription renewed early: term 1 closes auto-renewed, term 2 is uplifted 3 %.
    other = await won_subscription(live_url, sessions, crew, "Initech data")
    r = await desk.post(f"/api/v1/subscriptions/{other}/renew-early")
    assert r.status_code == 200, r.text

    async def renewed() -> dict[str, object] | None:
        got = (await desk.get(f"/api/v1/subscriptions/{other}")).json()
        return got if got["term_number"] == 2 else None
    got = await eventually(renewed, timeout=30, interval=0.3)
    assert [(t["number"], t["outcome"]) for t in got["terms"]] == [(2, None),
                                                                   (1, "auto_renewed")]
    assert got["arr"] == NET * 103 // 100
    for c in (owner, desk, web):
        await c.aclose()
