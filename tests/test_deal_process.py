"""DealWorkflow on the real stack: a deal's steps run as its children (approval chains,
envelopes), its stage follows them, repeats and skips are allowed, and a lost deal cancels
every running child cleanly (tasks closed, envelopes voided and their signers told)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus

from dealdesk.settings import Settings
from store.commerce import QuoteDocumentRow
from store.deals import Deal, deal_workflow_id
from store.models import ApprovalTask, Envelope, Quote
from tests.chain_fixtures import outbox
from tests.envelope_support import BROWSER
from tests.pdfs import contract_pdf
from tests.support import eventually, parent_of, replays
from tests.web_support import People, quote_body, seed_people, token_client
from web.services import quotes
from workflows.deal import DealWorkflow
from workflows.deal_messages import DealState
from workflows.envelope import EnvelopeWorkflow

ORDER_PDF = contract_pdf(2)


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


async def _quote(rep: httpx.AsyncClient, people: People, **over: object) -> dict[str, object]:
    r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id, **over))
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


async def _submit(rep: httpx.AsyncClient, qid: object) -> None:
    r = await rep.post(f"/api/v1/quotes/{qid}/submit")
    assert r.status_code == 202, r.text


async def _state(client: Client, settings: Settings, deal_id: int) -> DealState:
    handle = client.get_workflow_handle(deal_workflow_id(settings.workflow_prefix, deal_id))
    state = await handle.query("state", result_type=DealState)
    assert isinstance(state, DealState)
    return state


def _stage(sessions: sessionmaker[Session], deal_id: int) -> str:
    with sessions() as s:
        return s.get_one(Deal, deal_id).stage


def _envelope_body(qid: object) -> dict[str, object]:
    return {"title": "Order form", "quote_id": qid, "remind_every_days": None,
            "recipients": [{"name": "Ann Buyer", "email": "ann@globex.test",
                            "routing_order": 1}]}


async def _send(rep: httpx.AsyncClient, qid: object) -> int:
    r = await rep.post("/api/v1/envelopes", data={"spec": _json(_envelope_body(qid))},
                       files={"document": ("order.pdf", ORDER_PDF, "application/pdf")})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _json(value: object) -> str:
    return json.dumps(value)


async def test_steps_are_children_the_stage_follows_and_lost_cancels_them(
        live_url: str, client: Client, settings: Settings, people: People,
        sessions: sessionmaker[Session]) -> None:
    rep = await token_client(live_url, people.rep)
    first = await _quote(rep, people, title="Fleet v1")
    deal_id = int(first["deal_id"])  # type: ignore[call-overload]
    dealflow = deal_workflow_id(settings.workflow_prefix, deal_id)
    # A second quote of the same deal: a step repeated (a new quote after changes).
    second = await _quote(rep, people, title="Fleet v2", deal_id=deal_id)
    await asyncio.gather(_submit(rep, first["id"]), _submit(rep, second["id"]))
    chains = [quotes.workflow_id(settings.workflow_prefix, int(q["id"]), 1)  # type: ignore[call-overload]
              for q in (first, second)]
    for wid in chains:  # started by the deal's process, as its children
        assert await parent_of(client, wid) == dealflow
    await eventually(lambda: _stage(sessions, deal_id) == "approval" or None)
    expected = sorted((wid, "approval", "running") for wid in chains)

    async def both_running() -> DealState | None:
        state = await _state(client, settings, deal_id)
        return state if sorted((c.workflow_id, c.step, c.status)
                               for c in state.children) == expected else None

    state = await eventually(both_running)
    assert (state.status, state.stage) == ("open", "approval")

    # The API shows the process; a retried submit of a step starts no second child.
    deal = (await rep.get(f"/api/v1/deals/{deal_id}")).json()
    assert deal["process"]["stage"] == "approval"
    assert [s["workflow_id"] for s in deal["process"]["steps"]] == [
        c.workflow_id for c in state.children]
    await eventually(lambda: _open_tasks(sessions, [first["id"], second["id"]]))

    # Lost: every running chain is cancelled, its tasks closed, its quote back to draft, and
    # the process ends with no child running.
    r = await rep.post(f"/api/v1/deals/{deal_id}/lost", json={"reason": "went with a rival"})
    assert r.status_code == 200, r.text
    handle = client.get_workflow_handle(dealflow)
    assert await asyncio.wait_for(handle.result(), 30) == "lost"
    for wid in chains:
        d = await client.get_workflow_handle(wid).describe()
        assert d.status == WorkflowExecutionStatus.CANCELED, (wid, d.status)
    assert {c.status for c in (await _state(client, settings, deal_id)).children} == {
        "cancelled"}
    with sessions() as s:
        assert _open_tasks(sessions, [first["id"], second["id"]]) == []
        assert {q.status for q in s.scalars(select(Quote).where(
            Quote.deal_id == deal_id))} == {"draft"}
        assert s.get_one(Deal, deal_id).stage == "lost"
    await rep.aclose()


def _open_tasks(sessions: sessionmaker[Session], quote_ids: list[object]) -> list[int]:
    with sessions() as s:
        return list(s.scalars(select(ApprovalTask.id).where(
            ApprovalTask.quote_id.in_(quote_ids), ApprovalTask.state == "open")))


async def test_an_envelope_is_a_step_a_decline_repeats_it_and_lost_voids_it(
        live_url: str, client: Client, settings: Settings, people: People,
        sessions: sessionmaker[Session]) -> None:
    rep = await token_client(live_url, people.rep)
    q = await _quote(rep, people, title="Signing")
    deal_id = int(q["deal_id"])  # type: ignore[call-overload]
    with sessions.begin() as s:  # approved, its document made (other tests' subjects)
        s.get_one(Quote, q["id"]).status = "approved"
        s.add(QuoteDocumentRow(quote_id=q["id"], version=1, docx_sha256="0" * 64,
                               pdf_sha256=hashlib.sha256(ORDER_PDF).hexdigest(), pages=2,
                               created_by_id=people.rep.id))
    dealflow = deal_workflow_id(settings.workflow_prefix, deal_id)
    first = await _send(rep, q["id"])
    with sessions() as s:
        wid = s.get_one(Envelope, first).workflow_id
    assert await parent_of(client, wid) == dealflow
    await eventually(lambda: _stage(sessions, deal_id) == "signing" or None)

    # A decline ends the step; the deal goes back to contract; a second envelope repeats it.
    await _decline(sessions, client, first)
    await eventually(lambda: _stage(sessions, deal_id) == "contract" or None)
    second = await _send(rep, q["id"])
    await eventually(lambda: _stage(sessions, deal_id) == "signing" or None)
    with sessions() as s:
        second_wid = s.get_one(Envelope, second).workflow_id
    async def repeated() -> bool | None:
        state = await _state(client, settings, deal_id)
        return [(c.workflow_id, c.status) for c in state.children] == [
            (wid, "declined"), (second_wid, "running")] or None

    await eventually(repeated)

    r = await rep.post(f"/api/v1/deals/{deal_id}/lost", json={"reason": "budget cut"})
    assert r.status_code == 200, r.text
    assert await asyncio.wait_for(client.get_workflow_handle(dealflow).result(), 30) == "lost"
    with sessions() as s:
        env = s.get_one(Envelope, second)
        assert (env.status, env.ended_reason) == ("voided", "the deal was closed as lost")
    # The signer who was invited learns it is void.
    assert (f"envelope-{second}:outcome:ann@globex.test", "ann@globex.test") in outbox(
        sessions, f"envelope-{second}:"), outbox(sessions)
    # Both the deal's process and the cancelled envelope replay on today's code (the deal's
    # is saved with DEALDESK_SAVE_HISTORY=FILE for tests/test_replay.py).
    await replays(client, second_wid, [EnvelopeWorkflow])
    await replays(client, dealflow, [DealWorkflow])
    await rep.aclose()


async def _decline(sessions: sessionmaker[Session], client: Client, envelope_id: int) -> None:
    from web.services import envelopes as svc

    async def invited() -> bool | None:
        with sessions() as s:
            env = svc.get_envelope(s, envelope_id)
            return env.recipients[0].status in ("sent", "delivered", "viewed") or None

    await eventually(invited)
    with sessions() as s:
        env = svc.get_envelope(s, envelope_id)
        await svc.decline(client, env, env.recipients[0], "not these terms", BROWSER)


async def test_parallel_steps_of_one_deal_start_one_process(
        live_url: str, client: Client, settings: Settings, people: People) -> None:
    rep = await token_client(live_url, people.rep)
    first = await _quote(rep, people, title="Parallel 0")
    deal_id = int(first["deal_id"])  # type: ignore[call-overload]
    others = [await _quote(rep, people, title=f"Parallel {n}", deal_id=deal_id)
              for n in range(1, 6)]
    ids = [first["id"], *(o["id"] for o in others)]
    await asyncio.gather(*(_submit(rep, qid) for qid in ids))
    # Submitting again (a client retrying) is refused and starts nothing more.
    again = await asyncio.gather(*(rep.post(f"/api/v1/quotes/{qid}/submit") for qid in ids))
    assert {r.status_code for r in again} == {409}
    async def all_children() -> DealState | None:
        state = await _state(client, settings, deal_id)
        return state if len(state.children) == len(ids) and {
            c.status for c in state.children} == {"running"} else None

    state = await eventually(all_children)
    assert len(state.children) == len(ids) == len({c.workflow_id for c in state.children})
    await rep.aclose()
