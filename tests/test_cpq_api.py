"""Configure, price, quote through the JSON API: the demo catalog and policy, the live app, a
real worker and the real Temporal dev server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.cpq_support import Cast, cast
from tests.support import eventually
from tests.web_support import token_client

__all__ = ["cast"]  # the fixture

def workstation(qty: int = 5, *cpus: str) -> dict[str, Any]:
    body = {"sku": "WS-BODY", "quantity": 1,
            "options": [{"sku": c, "quantity": 1} for c in (cpus or ("CPU-16",))]}
    return {"sku": "WS-9", "quantity": qty, "options": [body]}


async def new_quote(rep: httpx.AsyncClient, account: int, currency: str = "USD") -> int:
    r = await rep.post("/api/v1/quotes", json={"account_id": account, "title": "Fleet refresh",
                                               "currency": currency, "term_months": 12})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def line(body: dict[str, Any], sku: str) -> dict[str, Any]:
    return next(ln for it in body["items"] for ln in it["lines"] if ln["sku"] == sku)


async def chain_steps(rep: httpx.AsyncClient, qid: int, version: int) -> dict[str, str]:
    """The version's chain once its first step is open (the projection catches up)."""
    async def steps() -> dict[str, str] | None:
        chains = (await rep.get(f"/api/v1/quotes/{qid}/approvals")).json()
        mine = [c for c in chains if c["quote_version"] == version]
        states = {s["key"]: s["state"] for s in mine[0]["steps"]} if mine else {}
        return states if "open" in states.values() else None
    return await eventually(steps)


async def decide_all(client: httpx.AsyncClient, qid: int) -> None:
    async def task() -> str | None:
        inbox = (await client.get("/api/v1/inbox", params={"limit": 500})).json()
        return next((t["id"] for t in inbox if t["quote_id"] == qid), None)
    task_id = await eventually(task)
    r = await client.post(f"/api/v1/tasks/{task_id}/decision", json={"decision": "approve"})
    assert r.status_code == 200, r.text


async def test_configured_quote_routes_and_reapproves_only_changed_steps(
        live_url: str, cast: Cast) -> None:
    rep = await token_client(live_url, cast.rep)
    qid = await new_quote(rep, cast.account)
    r = await rep.post(f"/api/v1/quotes/{qid}/items",
                       json={"selection": workstation(5), "manual_discount_pct": "25"})
    assert r.status_code == 201, r.text
    body = r.json()
    # The engine's numbers, from the demo catalog: 14,800.00 list, 25% off every line.
    assert (body["list_total"], body["net_total"]) == (1_480_000, 1_110_000)
    assert body["discount_pct"] == 25.0
    ws = line(body, "WS-9")
    assert [s["name"] for s in ws["steps"]] == ["list", "volume", "manual", "net"]
    assert (ws["list_unit"], ws["net_unit"]) == (120_000, 90_000)
    assert line(body, "WS-BODY")["net_total"] == 0  # bundled into the workstation's price
    bom = body["items"][0]["bom"]
    assert {"level": 3, "sku": "WS-FAN", "name": "Fan 120 mm", "quantity": 10} in bom

    r = await rep.post(f"/api/v1/quotes/{qid}/submit")
    assert r.status_code == 202, r.text
    assert await chain_steps(rep, qid, 1) == {"manager": "open", "deal_desk": "pending"}
    await decide_all(await token_client(live_url, cast.manager), qid)
    await decide_all(await token_client(live_url, cast.desk), qid)
    await eventually(lambda: _status(rep, qid, "approved"))

    # Adding an analytics hub keeps the largest discount (25%) but moves the margin: version
    # 2 re-opens the deal desk step only.
    r = await rep.post(f"/api/v1/quotes/{qid}/items", json={"selection": {"sku": "ANL-HUB"}})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2 and len(r.json()["items"]) == 2
    r = await rep.post(f"/api/v1/quotes/{qid}/submit")
    assert r.status_code == 202, r.text
    assert await chain_steps(rep, qid, 2) == {"manager": "carried_over", "deal_desk": "open"}


async def _status(client: httpx.AsyncClient, qid: int, status: str) -> bool:
    return bool((await client.get(f"/api/v1/quotes/{qid}")).json()["status"] == status)


async def test_channels_price_by_their_books_and_the_guard_routes(live_url: str,
                                                                 cast: Cast) -> None:
    rep = await token_client(live_url, cast.rep)
    qid = await new_quote(rep, cast.account)
    r = await rep.post(f"/api/v1/quotes/{qid}/items", json={"selection": workstation(5)})
    assert r.status_code == 201, r.text
    nets = {}
    for channel, tier in (("direct", None), ("reseller", "gold"),
                          ("distributor", "authorised")):
        r = await rep.put(f"/api/v1/quotes/{qid}/pricing",
                          json={"channel": channel, "partner_tier": tier})
        assert r.status_code == 200, r.text
        nets[channel] = (line(r.json(), "WS-9")["net_unit"], line(r.json(), "CPU-16")["net_unit"])
        assert not any(ln["channel_conflict"] for it in r.json()["items"] for ln in it["lines"])
    # direct: list; reseller gold: 20% partner discount; distributor: its net price book for
    # the workstation (no partner discount on a net price), 25% partner discount on the CPU.
    assert nets == {"direct": (120_000, 65_000), "reseller": (96_000, 52_000),
                    "distributor": (86_000, 48_750)}

    r = await rep.put(f"/api/v1/quotes/{qid}/pricing", json={
        "channel": "reseller", "partner_tier": "gold", "header_discount_pct": "10"})
    ws = line(r.json(), "WS-9")
    assert ws["net_unit"] == 86_400 and ws["direct_unit"] == 120_000 and ws["channel_conflict"]
    r = await rep.post(f"/api/v1/quotes/{qid}/submit")
    assert r.status_code == 202, r.text
    assert "channel" in await chain_steps(rep, qid, 1)


@pytest.mark.parametrize(("selection", "message"), [
    (workstation(2, "CPU-16", "CPU-32"), "breaks rule 'one-cpu': Choose either"),
    ({"sku": "WS-9", "options": [{"sku": "WS-BODY", "quantity": 1}]}, "rule 'needs-cpu'"),
    ({"sku": "NOPE-1"}, "unknown SKU 'NOPE-1'"),
    ({"sku": "WS-9", "quantity": 0}, "quantity must be between 1 and"),
    ({"sku": "WS-9", "quantity": -4}, "not -4"),
    ({"sku": "WS-9", "options": [{"sku": "ANL-SEAT"}]}, "ANL-SEAT is not an option of WS-9"),
])
async def test_bad_configurations_are_422_naming_the_problem(
        live_url: str, cast: Cast, selection: dict[str, Any], message: str) -> None:
    rep = await token_client(live_url, cast.rep)
    qid = await new_quote(rep, cast.account)
    r = await rep.post(f"/api/v1/quotes/{qid}/items", json={"selection": selection})
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]
    assert (await rep.get(f"/api/v1/quotes/{qid}/items")).json()["items"] == []


async def test_bad_pricing_context_is_4xx(live_url: str, cast: Cast) -> None:
    rep = await token_client(live_url, cast.rep)
    eur = await new_quote(rep, cast.globex, "EUR")
    r = await rep.put(f"/api/v1/quotes/{eur}/pricing", json={"price_book": "Web store"})
    assert r.status_code == 422 and "is in USD, the quote in EUR" in r.json()["detail"]
    r = await rep.put(f"/api/v1/quotes/{eur}/pricing",
                      json={"price_book": "Globex 2025 contract (expired)"})
    assert r.status_code == 422
    assert "valid 2025-01-01 to 2025-12-31, not on the quote's price date" in r.json()["detail"]
    r = await rep.put(f"/api/v1/quotes/{eur}/pricing", json={"header_discount_pct": "120"})
    assert r.status_code == 422 and "between 0 and 100" in r.json()["detail"]
    r = await rep.put(f"/api/v1/quotes/{eur}/pricing", json={"channel": "reseller"})
    assert r.status_code == 422 and "needs the partner's tier" in r.json()["detail"]
    items = (await rep.get(f"/api/v1/quotes/{eur}/items")).json()
    assert (items["channel"], items["price_book"]) == ("direct", None)  # nothing half-written
    other = await token_client(live_url, cast.manager)
    r = await other.post(f"/api/v1/quotes/{eur}/items", json={"selection": {"sku": "WS-9"}})
    assert r.status_code == 403


async def test_a_2000_line_quote(live_url: str, cast: Cast) -> None:
    rep = await token_client(live_url, cast.rep)
    qid = await new_quote(rep, cast.account)
    items = [{"selection": {"sku": "ANL-SEAT", "quantity": 1 + i % 80},
              "manual_discount_pct": str(i % 7)} for i in range(2000)]
    r = await rep.post(f"/api/v1/quotes/{qid}/items", json=items)
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["items"]) == 2000
    assert body["net_total"] == sum(it["net_total"] for it in body["items"])
    assert body["discount_pct"] == max(ln["discount_pct"] for it in body["items"]
                                       for ln in it["lines"])
    r = await rep.post(f"/api/v1/quotes/{qid}/submit")
    assert r.status_code == 202, r.text


async def test_catalog_csv_round_trip_and_admin_only(live_url: str, cast: Cast) -> None:
    admin = await token_client(live_url, cast.admin)
    rep = await token_client(live_url, cast.rep)
    csv_text = (await admin.get("/api/v1/catalog/products.csv")).text
    assert "WS-9,WS-9 Engineering Workstation,hardware,each,USD,1200.00,520.00" in csv_text
    r = await rep.put("/api/v1/catalog/products.csv", content=csv_text)
    assert r.status_code == 403
    assert (await rep.get("/api/v1/catalog/products.csv")).status_code == 403  # costs inside
    changed = csv_text.replace("USD,1200.00,520.00", "USD,1250.00,520.00")
    r = await admin.put("/api/v1/catalog/products.csv", content=changed)
    assert r.status_code == 200 and r.json()["version"] == 2
    bad = csv_text.replace("USD,1200.00,520.00", "USD,12.345,520.00")
    r = await admin.put("/api/v1/catalog/products.csv", content=bad)
    assert r.status_code == 422 and "more decimals than USD" in r.json()["detail"]
    book = (await admin.get("/api/v1/price-books/Web store.csv")).text
    assert book.splitlines() == ["sku,price", "ANL-SEAT,95.00"]
    r = await admin.put("/api/v1/price-books/Web store.csv", content="sku,price\nNOPE,1\n")
    assert r.status_code == 422 and "unknown SKU 'NOPE'" in r.json()["detail"]
    assert (await admin.get("/api/v1/catalog")).json()["version"] == 2
