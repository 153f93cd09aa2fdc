"""The envelope JSON API and verification over HTTP, end to end on the live app: send, follow,
complete, download, verify; a tampered final PDF fails on the API and on the verify page."""

from __future__ import annotations

import json
import re

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from tests.envelope_support import Cast, act, recipients
from tests.pdfs import contract_pdf
from tests.support import eventually, make_user
from tests.web_support import browser_session, token_client

SPEC = {"title": "Order form — Initech", "message": "Please sign",
        "recipients": [{"name": "Ann Buyer", "email": "ann@initech.test"}]}


async def test_send_follow_complete_and_verify(
        live_url: str, sessions: sessionmaker[Session], client: Client, cast: Cast) -> None:
    with sessions.begin() as s:
        auditor = make_user(s, "Avery Auditor", "auditor")
        other_rep = make_user(s, "Otto Rep", "rep")
        s.expunge_all()
    spec = {**SPEC, "recipients": [*SPEC["recipients"],  # type: ignore[misc]
                                   {"name": cast.cfo.name, "email": cast.cfo.email,
                                    "routing_order": 2, "user_email": cast.cfo.email}]}
    rep = await token_client(live_url, cast.sender)
    files = {"document": ("order.pdf", contract_pdf(3), "application/pdf")}
    r = await rep.post("/api/v1/envelopes", files=files, data={"spec": json.dumps(spec)})
    assert r.status_code == 201, r.text
    eid = r.json()["id"]

    bad = await rep.post("/api/v1/envelopes", files=files,
                         data={"spec": json.dumps({**SPEC, "recipients": [{"name": "A"}]})})
    assert bad.status_code == 422 and "spec.recipients.0.email" in bad.json()["detail"]
    aud = await token_client(live_url, auditor)
    assert (await aud.post("/api/v1/envelopes", files=files,
                           data={"spec": json.dumps(SPEC)})).status_code == 403
    assert (await aud.get(f"/api/v1/envelopes/{eid}")).status_code == 200
    assert (await aud.post(f"/api/v1/envelopes/{eid}/remind")).status_code == 403
    stranger = await token_client(live_url, other_rep)
    assert (await stranger.get(f"/api/v1/envelopes/{eid}")).status_code == 404

    await eventually(lambda: recipients(sessions, eid)["ann@initech.test"] == "sent")
    listed = (await rep.get("/api/v1/envelopes", params={"status": "sent"})).json()
    assert [e["waiting_on"] for e in listed if e["id"] == eid] == [["ann@initech.test"]]
    assert (await rep.post(f"/api/v1/envelopes/{eid}/remind")).json() == {"reminded": 1}
    await act(sessions, client, eid, "ann@initech.test")
    await eventually(lambda: recipients(sessions, eid)[cast.cfo.email] == "sent")
    await act(sessions, client, eid, cast.cfo.email)

    async def completed() -> bool:
        return (await rep.get(f"/api/v1/envelopes/{eid}")).json()["status"] == "completed"

    await eventually(completed, timeout=30)
    final = await rep.get(f"/envelopes/{eid}/files/final.pdf")
    assert final.status_code == 200 and final.content.startswith(b"%PDF")
    report = (await rep.post("/api/v1/verify",
                             files={"file": ("final.pdf", final.content)})).json()
    assert report["valid"] is True and len(report["signatures"]) == 3

    tampered = bytearray(final.content)
    at = tampered.index(b"clause 7 as written")
    tampered[at + len("clause ")] = ord("8")
    report = (await rep.post("/api/v1/verify",
                             files={"file": ("final.pdf", bytes(tampered))})).json()
    assert report["valid"] is False
    page_client, csrf = await browser_session(live_url, cast.sender)
    page = await page_client.post("/verify", files={"file": ("final.pdf", bytes(tampered))},
                                  data={"csrf_token": csrf})
    assert "Not valid." in page.text, page.text[:500]
    for c in (rep, aud, stranger, page_client):
        await c.aclose()


async def test_admins_mail_view_masks_other_peoples_signing_links(
        live_url: str, sessions: sessionmaker[Session], cast: Cast) -> None:
    with sessions.begin() as s:
        admin = make_user(s, "Ada Admin", "admin")
        s.expunge_all()
    rep = await token_client(live_url, cast.sender)
    files = {"document": ("order.pdf", contract_pdf(1), "application/pdf")}
    r = await rep.post("/api/v1/envelopes", files=files, data={"spec": json.dumps(SPEC)})
    assert r.status_code == 201, r.text
    await eventually(lambda: recipients(sessions, r.json()["id"])["ann@initech.test"] == "sent")
    web, _ = await browser_session(live_url, admin)
    page = (await web.get("/dev/mail")).text
    assert "Please sign: Order form" in page
    assert "/sign/…" in page and not re.search(r"/sign/[A-Za-z0-9_-]{20,}", page)
    for c in (rep, web):
        await c.aclose()
