"""The same store on PostgreSQL (Debian's server, started by the test setup): migrations,
a whole approval chain through the HTTP API, the inbox query, and the audit chain."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from store import audit
from tests.support import eventually
from tests.web_support import quote_body, seed_people, token_client

pytestmark = pytest.mark.postgres


async def test_chain_inbox_and_audit_on_postgres(live_url: str,
                                                 sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert s.get_bind().dialect.name == "postgresql"
    people = seed_people(sessions)
    rep = await token_client(live_url, people.rep)
    mgr = await token_client(live_url, people.manager)
    fin = await token_client(live_url, people.finance)
    qid = (await rep.post("/api/v1/quotes", json=quote_body(people.account_id))).json()["id"]
    assert (await rep.post(f"/api/v1/quotes/{qid}/submit")).status_code == 202

    async def first(client) -> str | None:  # type: ignore[no-untyped-def]
        tasks = (await client.get("/api/v1/inbox")).json()
        return tasks[0]["id"] if tasks else None

    m = await eventually(lambda: first(mgr))
    assert (await mgr.post(f"/api/v1/tasks/{m}/decision",
                           json={"decision": "approve"})).status_code == 200
    f = await eventually(lambda: first(fin))
    r = await fin.post(f"/api/v1/tasks/{f}/decision",
                       json={"decision": "reject", "comment": "Margin"})
    assert r.status_code == 200 and r.json()["chain_status"] == "rejected"
    quote = await eventually(lambda: _quote_status(rep, qid, "rejected"))
    assert quote
    with sessions() as s:
        assert audit.verify(s).ok
        s.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = "
                       "(SELECT min(id) + 1 FROM audit_events)"))
        s.commit()
        broken = audit.verify(s)
        first_id = s.scalar(text("SELECT min(id) + 1 FROM audit_events"))
    assert not broken.ok and broken.bad_row_id == first_id
    for c in (rep, mgr, fin):
        await c.aclose()


async def _quote_status(client, qid: int, want: str) -> bool:  # type: ignore[no-untyped-def]
    return bool((await client.get(f"/api/v1/quotes/{qid}")).json()["status"] == want)
