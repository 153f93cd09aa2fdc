"""Scale-out on one Temporal server: two ``dealdesk worker`` and two ``dealdesk web`` processes
on PostgreSQL, as the compose stack runs them. Two approvers clicking the same task through
different web processes get exactly one decision; parallel signers each sign once; the same
deals marked won through both web processes at once get one invoice each, numbered without
gaps."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.commerce import Invoice
from store.models import ApprovalTask, Envelope, OutboxMessage, Quote
from tests.pdfs import contract_pdf
from tests.processes import Processes
from tests.support import eventually
from tests.web_support import quote_body, seed_people, token_client

pytestmark = pytest.mark.postgres
LINK = re.compile(r"/sign/([A-Za-z0-9_-]{20,})")
CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')


def _token(sessions: sessionmaker[Session], email: str) -> str | None:
    with sessions() as s:
        bodies = s.scalars(select(OutboxMessage.body).where(OutboxMessage.to_addr == email)
                           .order_by(OutboxMessage.id.desc())).all()
    found = [m.group(1) for b in bodies if (m := LINK.search(b))]
    return found[0] if found else None


async def _sign(url: str, token: str, name: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        page = await http.get(f"/sign/{token}")
        csrf = CSRF.search(page.text)
        assert csrf, page.text[-500:]
        r = await http.post(f"/sign/{token}/sign", data={
            "csrf_token": csrf.group(1), "typed_name": name, "agree": "yes"})
        return r.status_code


@pytest.mark.timeout(420)
async def test_two_workers_and_two_web_processes_on_one_temporal_server(
        sessions: sessionmaker[Session], processes: Processes) -> None:
    people = seed_people(sessions)
    processes.worker()
    processes.worker()
    urls = [processes.web()[1], processes.web()[1]]
    reps = [await token_client(u, people.rep) for u in urls]

    # -- concurrent approvals: both managers, through different web processes, on each task.
    made = await asyncio.gather(*(reps[n % 2].post("/api/v1/quotes", json=quote_body(
        people.account_id, title=f"Scale {n}")) for n in range(10)))
    ids = [r.json()["id"] for r in made]
    await asyncio.gather(*(reps[n % 2].post(f"/api/v1/quotes/{i}/submit")
                           for n, i in enumerate(ids)))

    def manager_tasks() -> list[str] | None:
        with sessions() as s:
            found = list(s.scalars(select(ApprovalTask.id).where(
                ApprovalTask.step_key == "manager", ApprovalTask.state == "open")))
        return found if len(found) == 10 else None
    tasks = await eventually(manager_tasks, timeout=90, interval=0.5)
    managers = [await token_client(urls[0], people.manager),
                await token_client(urls[1], people.manager2)]
    clicks = await asyncio.gather(*(m.post(f"/api/v1/tasks/{t}/decision",
                                           json={"decision": "approve"})
                                    for t in tasks for m in managers))
    codes = [c.status_code for c in clicks]
    assert codes.count(200) == 10 and codes.count(409) == 10, codes
    assert all("already approved by" in c.json()["detail"] for c in clicks
               if c.status_code == 409)
    def decided() -> bool:  # the store follows each durable decision a moment later
        with sessions() as s:
            rows = s.scalars(select(ApprovalTask).where(ApprovalTask.id.in_(tasks))).all()
        return all(t.state == "approved" and t.decided_by_id in (people.manager.id,
                                                                 people.manager2.id)
                   for t in rows)
    await eventually(decided, timeout=60)

    # -- parallel signers: two customers in one routing group sign at once, each through a
    # different web process (and each one twice, a double submit): one signature each.
    spec = json.dumps({"title": "Scale MSA", "recipients": [
        {"name": "Ann Buyer", "email": "ann@scale.test", "routing_order": 1},
        {"name": "Ben Buyer", "email": "ben@scale.test", "routing_order": 1}]})
    r = await reps[0].post("/api/v1/envelopes", data={"spec": spec}, files={
        "document": ("msa.pdf", contract_pdf(2), "application/pdf")})
    assert r.status_code == 201, r.text
    envelope_id = r.json()["id"]
    tokens = {email: await eventually(lambda e=email: _token(sessions, e), timeout=60)
              for email in ("ann@scale.test", "ben@scale.test")}
    signed = await asyncio.gather(
        _sign(urls[0], tokens["ann@scale.test"], "Ann Buyer"),
        _sign(urls[1], tokens["ben@scale.test"], "Ben Buyer"),
        _sign(urls[1], tokens["ann@scale.test"], "Ann Buyer"),
        _sign(urls[0], tokens["ben@scale.test"], "Ben Buyer"))
    assert all(code < 500 for code in signed), signed

    def completed() -> Envelope | None:
        with sessions() as s:
            env = s.get(Envelope, envelope_id)
            return env if env is not None and env.status == "completed" else None
    await eventually(completed, timeout=120, interval=0.5)
    api = await reps[1].get(f"/api/v1/envelopes/{envelope_id}")
    kinds = [e["kind"] for e in api.json()["events"]]
    assert kinds.count("signed") == 2, kinds

    # -- concurrent wins: 20 approved deals, each marked won through both web processes.
    with sessions.begin() as s:
        deals = [Quote(account_id=people.account_id, owner_id=people.rep.id, title=f"Win {n}",
                       currency="USD", list_amount=1_000_000, net_amount=900_000,
                       cost_amount=300_000, term_months=12, status="approved",
                       billing="one_time") for n in range(20)]
        s.add_all(deals)
        s.flush()
        won_ids = [q.id for q in deals]
    wins = await asyncio.gather(*(rep.post(f"/api/v1/quotes/{i}/won")
                                  for i in won_ids for rep in reps))
    assert {w.status_code for w in wins} == {202}, [w.text for w in wins][:3]

    def invoiced() -> list[Invoice] | None:
        with sessions() as s:
            rows = list(s.scalars(select(Invoice).where(Invoice.quote_id.in_(won_ids))))
        return rows if len(rows) >= 20 else None
    invoices = await eventually(invoiced, timeout=120, interval=0.5)
    assert len(invoices) == 20 and len({i.quote_id for i in invoices}) == 20
    with sessions() as s:
        numbers = sorted(int(n.rsplit("-", 1)[1]) for n in s.scalars(select(Invoice.number)))
        assert numbers == list(range(1, len(numbers) + 1))  # gap-free across both workers
        assert s.scalar(select(func.count()).select_from(Invoice)) == 20
    for c in (*reps, *managers):
        await c.aclose()
