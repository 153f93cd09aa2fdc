"""A deal's amount follows its quotes: an edit, a configured item added, changed or removed,
and a repricing each leave the deal at its latest open quote's net amount and currency, in
the same transaction; a won or lost deal keeps its amount; parallel edits end consistent."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store.deals import Deal
from store.models import AuditEvent, Quote
from tests.cpq_support import Cast, cast  # noqa: F401  (the fixture)
from tests.support import serve
from tests.test_cpq_api import workstation
from tests.web_support import quote_body, token_client


async def _deal(client: httpx.AsyncClient, deal_id: int) -> tuple[int, str]:
    d = (await client.get(f"/api/v1/deals/{deal_id}")).json()
    return d["amount"], d["currency"]


async def test_the_deal_follows_edits_and_repricing(
        settings: Settings, sessions: sessionmaker[Session], cast: Cast) -> None:  # noqa: F811
    async with serve(settings) as url:
        rep = await token_client(url, cast.rep)
        r = await rep.post("/api/v1/quotes", json=quote_body(cast.account))
        quote = r.json()
        qid, did = quote["id"], quote["deal_id"]
        assert await _deal(rep, did) == (8_000_000, "USD")
        # A typed edit, in another currency.
        r = await rep.put(f"/api/v1/quotes/{qid}", json=quote_body(
            cast.account, net=6_500_000, currency="EUR"))
        assert r.status_code == 200, r.text
        assert await _deal(rep, did) == (6_500_000, "EUR")

        # A configured quote of the same deal: its lines and its pricing move the deal.
        r = await rep.post("/api/v1/quotes", json={
            "account_id": cast.account, "title": "Configured", "currency": "USD",
            "term_months": 12, "deal_id": did})
        cid = r.json()["id"]
        r = await rep.post(f"/api/v1/quotes/{cid}/items",
                           json={"selection": workstation(5), "manual_discount_pct": "25"})
        assert r.status_code == 201, r.text
        assert r.json()["net_total"] == 1_110_000
        assert await _deal(rep, did) == (1_110_000, "USD")
        r = await rep.put(f"/api/v1/quotes/{cid}/items/1",
                          json={"selection": workstation(10), "manual_discount_pct": "25"})
        assert r.status_code == 200, r.text
        changed = r.json()["net_total"]
        assert changed > 1_110_000 and await _deal(rep, did) == (changed, "USD")
        r = await rep.put(f"/api/v1/quotes/{cid}/pricing",
                          json={"channel": "direct", "header_discount_pct": "10"})
        assert r.status_code == 200, r.text
        repriced = r.json()["net_total"]
        assert repriced < changed and await _deal(rep, did) == (repriced, "USD")
        # The first quote edited again is the latest: the deal follows it back.
        r = await rep.put(f"/api/v1/quotes/{qid}", json=quote_body(cast.account, net=7_000_000))
        assert await _deal(rep, did) == (7_000_000, "USD")
        r = await rep.delete(f"/api/v1/quotes/{cid}/items/1")
        assert r.status_code == 200 and await _deal(rep, did) == (0, "USD")
        # A refused edit changes nothing.
        r = await rep.put(f"/api/v1/quotes/{qid}", json=quote_body(
            cast.account, net=99_000_000))
        assert r.status_code == 422
        assert await _deal(rep, did) == (0, "USD")

        # A lost deal keeps its amount, whatever its quotes do.
        desk = await token_client(url, cast.desk)
        r = await desk.post(f"/api/v1/deals/{did}/lost", json={"reason": "budget cut"})
        assert r.status_code == 200, r.text
        r = await rep.put(f"/api/v1/quotes/{qid}", json=quote_body(cast.account, net=1_000))
        assert r.status_code == 200, r.text
        assert await _deal(rep, did) == (0, "USD")
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).where(
            AuditEvent.action == "deal.amount_changed",
            AuditEvent.entity == f"deal:{did}").order_by(AuditEvent.id)).all()
        assert [(e.data["amount"], e.data["currency"]) for e in rows] == [
            (6_500_000, "EUR"), (1_110_000, "USD"), (changed, "USD"), (repriced, "USD"),
            (7_000_000, "USD"), (0, "USD")]


async def test_a_won_deal_keeps_its_amount(
        settings: Settings, sessions: sessionmaker[Session], cast: Cast) -> None:  # noqa: F811
    async with serve(settings) as url:
        rep = await token_client(url, cast.rep)
        quote = (await rep.post("/api/v1/quotes", json=quote_body(cast.account))).json()
        other = (await rep.post("/api/v1/quotes", json=quote_body(
            cast.account, deal_id=quote["deal_id"]))).json()
        with sessions.begin() as s:
            s.get_one(Deal, quote["deal_id"]).stage = "won"
        r = await rep.put(f"/api/v1/quotes/{other['id']}", json=quote_body(
            cast.account, net=100))
        assert r.status_code == 200, r.text
        assert await _deal(rep, quote["deal_id"]) == (8_000_000, "USD")


async def test_parallel_edits_leave_the_deal_at_its_latest_quote(
        settings: Settings, sessions: sessionmaker[Session], cast: Cast) -> None:  # noqa: F811
    async with serve(settings) as url:
        rep = await token_client(url, cast.rep)
        first = (await rep.post("/api/v1/quotes", json=quote_body(cast.account))).json()
        did = first["deal_id"]
        second = (await rep.post("/api/v1/quotes", json=quote_body(
            cast.account, deal_id=did))).json()
        replies = await asyncio.gather(*[
            rep.put(f"/api/v1/quotes/{q['id']}", json=quote_body(
                cast.account, net=1_000_000 + n * 1_000))
            for n, q in enumerate([first, second] * 3)])
        assert [r.status_code for r in replies] == [200] * 6, [r.text for r in replies]
        amount, _ = await _deal(rep, did)
    with sessions() as s:
        latest = s.scalars(select(Quote).where(Quote.deal_id == did).order_by(
            Quote.updated_at.desc(), Quote.id.desc())).first()
        assert latest is not None and amount == latest.net_amount
        rows = s.scalars(select(AuditEvent).where(
            AuditEvent.action == "deal.amount_changed",
            AuditEvent.entity == f"deal:{did}").order_by(AuditEvent.id)).all()
        assert rows[-1].data["amount"] == amount
