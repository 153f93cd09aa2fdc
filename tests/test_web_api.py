"""The JSON API end to end: live app, real worker, real Temporal dev server."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.models import AuditEvent, Policy
from tests.support import eventually
from tests.web_support import People, quote_body, seed_people, token_client


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


async def _submitted_task(rep: httpx.AsyncClient, mgr: httpx.AsyncClient, people: People,
                          title: str = "API quote", wait: float = 15) -> tuple[int, str]:
    r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id, title=title))
    assert r.status_code == 201, r.text
    qid = r.json()["id"]
    r = await rep.post(f"/api/v1/quotes/{qid}/submit")
    assert r.status_code == 202, r.text

    async def task_id() -> str | None:
        inbox = (await mgr.get("/api/v1/inbox", params={"limit": 500})).json()
        return next((t["id"] for t in inbox if t["quote_id"] == qid), None)

    return qid, await eventually(task_id, timeout=wait, interval=0.2)


async def test_token_inbox_decision_and_conflict(live_url: str, people: People) -> None:
    rep = await token_client(live_url, people.rep)
    mgr = await token_client(live_url, people.manager)
    mgr2 = await token_client(live_url, people.manager2)
    fin = await token_client(live_url, people.finance)
    qid, task_id = await _submitted_task(rep, mgr, people)

    r = await mgr.post(f"/api/v1/tasks/{task_id}/decision", json={"decision": "approve"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved"
    assert r.json()["decided_by"] == "Mo Manager"
    # The store follows the durable decision within moments: the inbox drops it, and
    # finance's inbox gains the next step.
    await eventually(lambda: _absent(mgr, task_id))
    fin_inbox = await eventually(lambda: _inbox(fin))
    assert fin_inbox[0]["quote_id"] == qid and fin_inbox[0]["step"] == "Finance"

    r = await mgr2.post(f"/api/v1/tasks/{task_id}/decision", json={"decision": "approve"})
    assert r.status_code == 409
    assert "Mo Manager" in r.json()["detail"]

    chain = (await rep.get(f"/api/v1/quotes/{qid}/approvals")).json()
    assert [s["state"] for s in chain[0]["steps"]] == ["approved", "open"]
    for c in (rep, mgr, mgr2, fin):
        await c.aclose()


async def _absent(client: httpx.AsyncClient, task_id: str) -> bool:
    return task_id not in [t["id"] for t in await _inbox(client)]


async def _inbox(client: httpx.AsyncClient) -> list[dict[str, object]]:
    return (await client.get("/api/v1/inbox")).json()  # type: ignore[no-any-return]


async def test_fifty_races_give_one_decision_each(live_url: str, people: People,
                                                  sessions: sessionmaker[Session]) -> None:
    rep = await token_client(live_url, people.rep)
    mgr = await token_client(live_url, people.manager)
    mgr2 = await token_client(live_url, people.manager2)
    tasks = await asyncio.gather(*(_submitted_task(rep, mgr, people, f"Race {i}", wait=120)
                                   for i in range(50)))
    for _qid, task_id in tasks:
        a, b = await asyncio.gather(
            mgr.post(f"/api/v1/tasks/{task_id}/decision", json={"decision": "approve"}),
            mgr2.post(f"/api/v1/tasks/{task_id}/decision",
                      json={"decision": "reject", "comment": "too deep"}))
        codes = sorted([a.status_code, b.status_code])
        assert codes == [200, 409], (a.text, b.text)
        winner, loser = (a, b) if a.status_code == 200 else (b, a)
        assert winner.json()["decided_by"] in loser.json()["detail"]
    def decisions() -> int:
        with sessions() as s:
            return s.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action.in_(["task.approved", "task.rejected"]))) or 0

    await eventually(lambda: decisions() >= 50)
    assert decisions() == 50
    for c in (rep, mgr, mgr2):
        await c.aclose()


async def test_bad_input_is_refused_and_nothing_written(live_url: str, people: People,
                                                        sessions: sessionmaker[Session]) -> None:
    rep = await token_client(live_url, people.rep)
    mgr = await token_client(live_url, people.manager)
    admin = await token_client(live_url, people.admin)
    with sessions() as s:
        events_before = s.scalar(select(func.count()).select_from(AuditEvent))
        policies_before = s.scalar(select(func.count()).select_from(Policy))

    r = await rep.get("/api/v1/quotes/99999")
    assert r.status_code == 404 and "no quote 99999" in r.json()["detail"]
    r = await rep.post("/api/v1/quotes/99999/submit")
    assert r.status_code == 404
    r = await rep.post("/api/v1/quotes", content=b"{not json", headers={
        "content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id, net=-5))
    assert r.status_code == 422 and "net_amount" in r.json()["detail"]
    r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id, net=20_000_000))
    assert r.status_code == 422 and r.json()["field"] == "net_amount"
    r = await mgr.post("/api/v1/tasks/nope/decision", json={"decision": "approve"})
    assert r.status_code == 404

    cycle = """
name: web
steps:
  - {key: a, name: A, approvers: [{role: finance}], after: [b]}
  - {key: b, name: B, approvers: [{role: legal}], after: [a]}
rules:
  - {id: r, when: [], add: [a]}
"""
    r = await admin.post("/api/v1/policies", json={"source": cycle})
    assert r.status_code == 422 and "cycle" in r.json()["detail"]
    unknown_role = cycle.replace("legal", "janitor").replace("after: [a]", "")
    r = await admin.post("/api/v1/policies", json={"source": unknown_role})
    assert r.status_code == 422 and "unknown role 'janitor'" in r.json()["detail"]
    r = await admin.post("/api/v1/policies", json={"source": "steps: ["})
    assert r.status_code == 422 and "YAML" in r.json()["detail"]

    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == events_before
        assert s.scalar(select(func.count()).select_from(Policy)) == policies_before

    qid, task_id = await _submitted_task(rep, mgr, people)
    r = await mgr.post(f"/api/v1/tasks/{task_id}/decision", json={"decision": "reject"})
    assert r.status_code == 422 and r.json()["field"] == "comment"
    r = await mgr.post(f"/api/v1/tasks/{task_id}/decision", json={"decision": "maybe"})
    assert r.status_code == 422
    r = await mgr.post(f"/api/v1/tasks/{task_id}/decision",
                       json={"decision": "approve", "quote_version": 3})
    assert r.status_code == 409 and "version" in r.json()["detail"]
    r = await rep.put(f"/api/v1/quotes/{qid}", json=quote_body(people.account_id))
    assert r.status_code == 409 and "recall" in r.json()["detail"]
    for c in (rep, mgr, admin):
        await c.aclose()
