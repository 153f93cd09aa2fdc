"""Authentication and authorisation: route x role matrix, CSRF, read-only auditors."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support import eventually
from tests.web_support import People, browser_session, quote_body, seed_people, token_client

ROLES = ("rep", "sales_manager", "finance", "legal", "auditor", "admin")
ALL = set(ROLES)
READERS = ALL - {"rep"}

# path → roles that get 200 (everyone else 403)
PAGES = {
    "/inbox": ALL,
    "/quotes": ALL,
    "/quotes/new": {"rep"},
    "/policies": READERS,
    "/policies/edit": {"admin"},
    "/audit": {"auditor", "admin"},
    "/users": {"admin"},
    "/away": ALL,
    "/dev/mail": ALL,
}
API_GETS = {
    "/api/v1/me": ALL,
    "/api/v1/inbox": ALL,
    "/api/v1/quotes": ALL,
    "/api/v1/accounts": ALL,
    "/api/v1/policies": READERS,
    "/api/v1/audit": {"auditor", "admin"},
    "/api/v1/audit/verify": {"auditor", "admin"},
}


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


async def test_route_role_matrix(live_url: str, people: People) -> None:
    failures = []
    for role in ROLES:
        user = people.by_role(role)
        web, _ = await browser_session(live_url, user)
        api = await token_client(live_url, user)
        for path, allowed in PAGES.items():
            r = await web.get(path)
            want = 200 if role in allowed else 403
            if r.status_code != want:
                failures.append(f"{role} GET {path}: {r.status_code}, want {want}")
            if want == 403 and "needs one of these roles" not in r.text and \
                    "only sales reps" not in r.text:
                failures.append(f"{role} GET {path}: the 403 page does not say why")
        for path, allowed in API_GETS.items():
            r = await api.get(path)
            want = 200 if role in allowed else 403
            if r.status_code != want:
                failures.append(f"{role} API {path}: {r.status_code}, want {want}")
        r = await api.post("/api/v1/quotes", json=quote_body(people.account_id))
        if r.status_code != (201 if role == "rep" else 403):
            failures.append(f"{role} POST /api/v1/quotes: {r.status_code}")
        r = await api.post("/api/v1/policies", json={"source": "name: x"})
        if r.status_code != (422 if role == "admin" else 403):
            failures.append(f"{role} POST /api/v1/policies: {r.status_code}")
        await web.aclose()
        await api.aclose()
    assert not failures, "\n".join(failures)


async def test_anonymous_requests_are_turned_away(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as anon:
        for path in PAGES:
            r = await anon.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
        for path in API_GETS:
            r = await anon.get(path)
            assert r.status_code == 401, path
        r = await anon.get("/api/v1/inbox", headers={"Authorization": "Bearer ddk_forged"})
        assert r.status_code == 401 and "token" in r.json()["detail"]


async def test_form_posts_need_the_csrf_token(live_url: str, people: People) -> None:
    web, token = await browser_session(live_url, people.rep)
    form = {"account_id": people.account_id, "title": "No token", "currency": "USD",
            "list_amount": "100", "net_amount": "90", "cost_amount": "10", "term_months": 12}
    r = await web.post("/quotes/new", data=form)
    assert r.status_code == 403 and "security token" in r.text
    r = await web.post("/quotes/new", data={**form, "csrf_token": "wrong"})
    assert r.status_code == 403
    r = await web.post("/quotes/new", data={**form, "csrf_token": token})
    assert r.status_code == 303
    r = await web.post("/logout")
    assert r.status_code == 403
    async with httpx.AsyncClient(base_url=live_url) as anon:
        r = await anon.post("/login", data={"email": people.rep.email, "password": "pw"})
        assert r.status_code == 403
    await web.aclose()


async def test_auditor_reads_but_cannot_act_and_queues_are_separate(
        live_url: str, people: People) -> None:
    rep = await token_client(live_url, people.rep)
    mgr = await token_client(live_url, people.manager)
    fin = await token_client(live_url, people.finance)
    auditor = await token_client(live_url, people.auditor)
    qid = (await rep.post("/api/v1/quotes", json=quote_body(people.account_id))).json()["id"]
    assert (await rep.post(f"/api/v1/quotes/{qid}/submit")).status_code == 202

    async def manager_task() -> str | None:
        tasks = (await mgr.get("/api/v1/inbox")).json()
        return next((t["id"] for t in tasks if t["quote_id"] == qid), None)

    task_id = await eventually(manager_task)
    # The auditor can read the task and the quote's chain...
    assert (await auditor.get(f"/api/v1/tasks/{task_id}")).status_code == 200
    assert (await auditor.get(f"/api/v1/quotes/{qid}/approvals")).status_code == 200
    # ...but cannot decide, and neither can finance on the sales-manager queue's task.
    for outsider in (auditor, fin):
        r = await outsider.post(f"/api/v1/tasks/{task_id}/decision",
                                json={"decision": "approve"})
        assert r.status_code == 403, r.text
    assert task_id not in [t["id"] for t in (await fin.get("/api/v1/inbox")).json()]
    # The submitter cannot approve their own quote even with the role... (rep has none)
    r = await rep.post(f"/api/v1/tasks/{task_id}/decision", json={"decision": "approve"})
    assert r.status_code == 403
    r = await mgr.post(f"/api/v1/tasks/{task_id}/decision", json={"decision": "approve"})
    assert r.status_code == 200
    for c in (rep, mgr, fin, auditor):
        await c.aclose()


async def test_escaping_and_security_headers(live_url: str, people: People) -> None:
    rep = await token_client(live_url, people.rep)
    evil = '<script>alert("x")</script>'
    r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id, title=evil))
    qid = r.json()["id"]
    web, _ = await browser_session(live_url, people.rep)
    page = await web.get(f"/quotes/{qid}")
    assert evil not in page.text and "&lt;script&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    async with httpx.AsyncClient(base_url=live_url) as anon:
        login = await anon.get("/login")
    set_cookie = login.headers["set-cookie"].lower()
    assert "dealdesk_session=" in set_cookie
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    await rep.aclose()
    await web.aclose()
