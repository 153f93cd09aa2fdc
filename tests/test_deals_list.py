"""The deals list, page and API: filters by stage, owner, forecast category and expected
close, a search, paging like the other list pages, and who sees whose deals."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store.deals import STAGES, Deal, forecast_of
from tests.support import make_account, make_user, serve
from tests.web_support import browser_session, token_client

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CLOSE = dt.date(2027, 1, 1)


@pytest.fixture
def book(sessions: sessionmaker[Session]) -> dict[str, object]:
    """60 deals of Rae (every stage in turn, closing a day apart, one changed a minute after
    the other) and 3 of Oz, one without an expected close."""
    with sessions.begin() as s:
        rae, oz = make_user(s, "Rae Rep", "rep"), make_user(s, "Oz Other", "rep")
        manager = make_user(s, "Mo Manager", "sales_manager")
        auditor = make_user(s, "Aud Itor", "auditor")
        acme, globex = make_account(s, "Acme"), make_account(s, "Globex")
        s.flush()
        for n in range(60):
            stage = STAGES[n % len(STAGES)]
            s.add(Deal(account_id=acme.id, owner_id=rae.id, name=f"Rae deal {n:02d}",
                       amount=100_000 * (n + 1), currency="USD", stage=stage,
                       forecast_category=forecast_of(stage),
                       expected_close=CLOSE + dt.timedelta(days=n),
                       updated_at=START + dt.timedelta(minutes=n)))
        for n, stage in enumerate(("intake", "signing", "won")):
            s.add(Deal(account_id=globex.id, owner_id=oz.id, name=f"Oz <deal> {n}",
                       amount=5_000_000, currency="EUR", stage=stage,
                       forecast_category=forecast_of(stage),
                       expected_close=None if n == 0 else CLOSE + dt.timedelta(days=n),
                       updated_at=START + dt.timedelta(hours=2, minutes=n)))
        s.flush()
        out: dict[str, object] = {"rae": rae, "oz": oz, "manager": manager,
                                  "auditor": auditor}
        s.expunge_all()
    return out


def _names(html: str) -> list[str]:
    return re.findall(r'<td><a href="/deals/\d+">([^<]+)</a></td>', html)


def _count(html: str) -> str:
    m = re.search(r'<p class="list-count" role="status">([^<]*)</p>', html)
    assert m
    return m.group(1).strip()


async def test_the_deals_page_filters_and_pages(
        settings: Settings, book: dict[str, object]) -> None:
    rae, oz = book["rae"], book["oz"]
    async with serve(settings) as url:
        manager, _ = await browser_session(url, book["manager"])  # type: ignore[arg-type]
        r = await manager.get("/deals")
        assert r.status_code == 200
        # Newest change first, 50 a page, the readable columns, the owner select.
        assert _count(r.text) == "1–50 of 63 deals"
        assert _names(r.text)[:4] == ["Oz &lt;deal&gt; 2", "Oz &lt;deal&gt; 1",
                                      "Oz &lt;deal&gt; 0", "Rae deal 59"]
        for column in ("Deal", "Account", "Owner", "Stage", "Forecast", "Amount",
                       "Expected close", "Updated"):
            assert re.search(rf"<th[^>]*>{column}</th>", r.text), column
        assert f'<option value="{rae.id}" >Rae Rep</option>' in r.text  # type: ignore[attr-defined]
        assert 'rel="next" href="/deals?page=2"' in r.text
        r = await manager.get("/deals", params={"page": "2"})
        assert _count(r.text) == "51–63 of 63 deals" and len(_names(r.text)) == 13
        assert _names((await manager.get("/deals", params={"page": "99"})).text) == \
            _names(r.text)  # past the end: the last page
        # Owner, forecast, expected close, together; the pager keeps them.
        r = await manager.get("/deals", params={"owner": str(oz.id)})  # type: ignore[attr-defined]
        assert _count(r.text) == "3 deals"
        r = await manager.get("/deals", params={"forecast": "commit"})
        commit = [n for n in range(60) if forecast_of(STAGES[n % 9]) == "commit"]
        assert _count(r.text) == f"{len(commit) + 1} deals"
        r = await manager.get("/deals", params={
            "owner": str(rae.id), "closes_after": str(CLOSE + dt.timedelta(days=9)),  # type: ignore[attr-defined]
            "closes_before": str(CLOSE + dt.timedelta(days=20))})
        assert _names(r.text) == [f"Rae deal {n:02d}" for n in range(19, 9, -1)]
        r = await manager.get("/deals", params={"closes_after": str(CLOSE - dt.timedelta(days=1)),
                                                "stage": "won", "forecast": "closed"})
        assert "Oz &lt;deal&gt; 2" in _names(r.text)
        assert len(_names(r.text)) == 1 + len([n for n in range(60) if n % 9 == 7])
        r = await manager.get("/deals", params={"forecast": "pipeline", "q": "deal 0"})
        assert 'href="/deals?forecast=pipeline&amp;q=deal+0&amp;stage=won"' in r.text
        # A hand-edited URL falls back to no filter rather than failing.
        r = await manager.get("/deals", params={"forecast": "maybe", "closes_after": "soon",
                                                "owner": "x", "page": "-1"})
        assert r.status_code == 200 and _count(r.text) == "1–50 of 63 deals"
        # htmx gets the list alone.
        r = await manager.get("/deals", params={"owner": str(oz.id)},  # type: ignore[attr-defined]
                              headers={"HX-Request": "true"})
        assert "<html" not in r.text and _count(r.text) == "3 deals"
        # … and the stage tabs out of band, keeping the new filter.
        assert 'id="stage-tabs" aria-label="Stages" hx-swap-oob="true"' in r.text
        assert f'href="/deals?owner={oz.id}&amp;stage=won"' in r.text  # type: ignore[attr-defined]
        assert "HX-Request" in r.headers["vary"]

        # A rep sees their own deals only, and no owner select.
        web, _ = await browser_session(url, oz)  # type: ignore[arg-type]
        r = await web.get("/deals")
        assert _count(r.text) == "3 deals" and 'name="owner"' not in r.text
        r = await web.get("/deals", params={"owner": str(rae.id)})  # type: ignore[attr-defined]
        assert _count(r.text) == "3 deals"
        r = await web.get("/deals", params={"forecast": "omitted"})
        assert "Nothing here" in r.text


async def test_the_deals_api_filters_and_pages(
        settings: Settings, book: dict[str, object]) -> None:
    rae, oz = book["rae"], book["oz"]
    async with serve(settings) as url:
        auditor = await token_client(url, book["auditor"])  # type: ignore[arg-type]
        r = await auditor.get("/api/v1/deals")
        assert r.status_code == 200 and len(r.json()) == 63  # a list, as before
        r = await auditor.get("/api/v1/deals", params={"limit": 25, "page": 3})
        assert [d["name"] for d in r.json()] == [f"Rae deal {n:02d}" for n in range(12, -1, -1)]
        r = await auditor.get("/api/v1/deals", params={"limit": 25, "page": 9})
        assert len(r.json()) == 13  # past the end: the last page
        r = await auditor.get("/api/v1/deals", params={
            "owner_id": rae.id, "forecast": "best_case",  # type: ignore[attr-defined]
            "closes_before": str(CLOSE + dt.timedelta(days=10))})
        assert [d["name"] for d in r.json()] == ["Rae deal 04", "Rae deal 03"]
        r = await auditor.get("/api/v1/deals", params={"closes_after": str(CLOSE)})
        assert "Oz <deal> 0" not in [d["name"] for d in r.json()]  # no expected close
        for params, field in (({"limit": 0}, "limit"), ({"limit": 501}, "limit"),
                              ({"page": 0}, "page"), ({"forecast": "maybe"}, "forecast"),
                              ({"closes_after": "soon"}, "closes_after"),
                              ({"closes_after": "2027-02-01", "closes_before": "2027-01-01"},
                               "closes_before"), ({"stage": "nope"}, "stage")):
            r = await auditor.get("/api/v1/deals", params=params)
            assert r.status_code == 422 and r.json()["field"] == field, (params, r.text)
        rep = await token_client(url, oz)  # type: ignore[arg-type]
        assert (await rep.get("/api/v1/deals", params={"owner_id": rae.id})).json() == []  # type: ignore[attr-defined]
        assert {d["owner_id"] for d in (await rep.get("/api/v1/deals")).json()} == {oz.id}  # type: ignore[attr-defined]
