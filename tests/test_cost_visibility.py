"""Costs and margins only for the roles that see costs everywhere (``web.services.costs``:
deal desk, finance, CFO, auditors, admins): the quote and items API, the builder's totals and
the quote page, for a rep and the deal desk on the same configured quote; twenty mixed reads
at once each get their own view."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.cpq_support import Cast, cast
from tests.web_support import browser_session, token_client
from web.services.costs import COST_KEYS

__all__ = ["cast"]


def cost_keys(value: object) -> set[str]:
    """Every cost or margin key anywhere in a JSON document."""
    found: set[str] = set()

    def walk(v: object) -> None:
        if isinstance(v, dict):
            found.update(k for k in v if k in COST_KEYS)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return found


async def test_a_rep_sees_no_costs_the_deal_desk_does(live_url: str, cast: Cast) -> None:
    rep = await token_client(live_url, cast.rep)
    desk = await token_client(live_url, cast.desk)
    r = await rep.post("/api/v1/quotes", json={"account_id": cast.account, "term_months": 12,
                                               "title": "Hub", "currency": "USD"})
    qid = r.json()["id"]
    added = await rep.post(f"/api/v1/quotes/{qid}/items",
                           json={"selection": {"sku": "ANL-HUB"}})
    assert added.status_code == 201 and cost_keys(added.json()) == set()

    mine = (await rep.get(f"/api/v1/quotes/{qid}/items")).json()
    theirs = (await desk.get(f"/api/v1/quotes/{qid}/items")).json()
    assert cost_keys(mine) == set() and "cost_total" not in json.dumps(mine)
    assert {"cost_total", "margin_pct"} <= cost_keys(theirs)
    assert all("cost_total" in line for it in theirs["items"] for line in it["lines"])
    assert theirs["cost_total"] > 0
    # Everything else is the same document.
    assert mine["net_total"] == theirs["net_total"] and len(mine["items"]) == 1

    q_rep = (await rep.get(f"/api/v1/quotes/{qid}")).json()
    q_desk = (await desk.get(f"/api/v1/quotes/{qid}")).json()
    assert (q_rep["cost_amount"], q_rep["margin_pct"]) == (None, None)
    assert q_desk["cost_amount"] == theirs["cost_total"] and q_desk["margin_pct"] is not None
    listed = (await rep.get("/api/v1/quotes")).json()
    assert [q["cost_amount"] for q in listed] == [None]

    for user, shows in ((cast.rep, False), (cast.desk, True)):
        browser, _ = await browser_session(live_url, user)
        for page in (f"/quotes/{qid}/build", f"/quotes/{qid}"):
            text = (await browser.get(page)).text
            assert ("Margin" in text) is shows, (user.name, page)
        await browser.aclose()

    async def view(client: httpx.AsyncClient) -> set[str]:
        r = await client.get(f"/api/v1/quotes/{qid}/items")
        assert r.status_code == 200
        return cost_keys(r.json())

    views = await asyncio.gather(*(view(rep if i % 2 else desk) for i in range(20)))
    assert all((v == set()) is (i % 2 == 1) for i, v in enumerate(views))
    for c in (rep, desk):
        await c.aclose()
