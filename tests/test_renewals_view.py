"""The renewals view at the scale of a book (web/services/renewals.py): its summary and chart,
read as SQL aggregates, equal a row-by-row computation over the same subscriptions, for the
deal desk and for each rep, in every window and around month ends (on SQLite and on
PostgreSQL); the table comes a page at a time, soonest first, every row once, through the
API's next links and the page's pager; who sees what is unchanged.

The view only reads the store, so the subscriptions are written straight into it (what
``store.subscriptions.subscribe`` writes), and the app is served without a worker."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from store.health import AccountHealth
from store.models import Quote, User
from store.subscriptions import Contract, Subscription, SubscriptionTerm
from tests.support import make_account, make_user, serve
from tests.web_support import browser_session, token_client
from web.services import renewals as view
from web.services.subscriptions import today

BANDS = (None, "critical", "at_risk", "good")
"""The accounts' health: not scored, critical, at risk, good."""
ROW_FIELDS = {"id", "name", "account_id", "account", "owner_id", "owner", "status", "currency",
              "arr", "term_number", "term_start", "term_end", "term_months", "renews_on",
              "days_to_renewal", "notice_days", "term_end_action", "uplift_pct", "health_band",
              "at_risk", "risk_reason", "renewal_pricing"}


@dataclass
class Book:
    on: dt.date
    desk: User
    finance: User
    reps: list[User]


def seed_book(sessions: sessionmaker[Session], on: dt.date) -> Book:
    """About 130 subscriptions of two reps over four accounts, renewing from two days before
    ``on`` to 130 days after (several on the same day, each window's edges included), active,
    cancelling or churned, in USD or EUR, some flagged at risk."""
    with sessions.begin() as s:
        desk = make_user(s, "Dee Desk", "deal_desk")
        finance = make_user(s, "Fay Finance", "finance")
        reps = [make_user(s, "Rae Rep", "rep"), make_user(s, "Ray Other", "rep")]
        accounts = [make_account(s, f"Book {n}") for n in range(len(BANDS))]
        for account, band in zip(accounts, BANDS, strict=True):
            if band:
                s.add(AccountHealth(account_id=account.id, score=50, band=band))
        offsets = [*range(-2, 131), 0, 30, 30, 31, 60, 90, 90, 120, 121]
        for i, days_left in enumerate(offsets):
            owner, account = reps[i % 2], accounts[i % len(accounts)]
            end = on + dt.timedelta(days=days_left - 1)
            start = end - dt.timedelta(days=364)
            arr = 100_000 + 1_000 * i
            q = Quote(account_id=account.id, owner_id=owner.id, title=f"Plan {i}",
                      currency="EUR" if i % 5 == 0 else "USD", list_amount=arr,
                      net_amount=arr, cost_amount=arr // 3, term_months=12, status="won")
            s.add(q)
            s.flush()
            c = Contract(quote_id=q.id, account_id=account.id, start_date=start, end_date=end,
                         term_months=12)
            s.add(c)
            s.flush()
            sub = Subscription(account_id=account.id, contract_id=c.id, owner_id=owner.id,
                               quote_id=q.id, name=q.title, currency=q.currency, arr=arr,
                               term_start=start, term_end=end, term_months=12,
                               status=("churned" if i % 11 == 0 else
                                       "cancelling" if i % 7 == 0 else "active"),
                               at_risk=i % 6 == 0)
            s.add(sub)
            s.flush()
            s.add(SubscriptionTerm(subscription_id=sub.id, number=1, start=start, end=end,
                                   quote_id=q.id, arr=arr))
        s.expunge_all()
    return Book(on, desk, finance, reps)


@dataclass(frozen=True)
class Expected:
    ids: list[int]
    """The window's rows, soonest first."""
    count: int
    arr: int
    arr_at_risk: int
    currencies: list[str]
    buckets: list[tuple[dt.date, int, int]]


def row_by_row(sessions: sessionmaker[Session], user: User, on: dt.date,
               within_days: int) -> Expected:
    """What the view should say, computed one subscription at a time from the definitions."""
    with sessions() as s:
        subs = list(s.scalars(select(Subscription)))
        bands = {h.account_id: h.band for h in s.scalars(select(AccountHealth))}
    reads_all = bool(set(_roles(sessions, user)) & {"deal_desk", "finance"})
    rows = []
    for sub in subs:
        if sub.status == "churned" or not (reads_all or sub.owner_id == user.id):
            continue
        renews = sub.term_end + dt.timedelta(days=1)
        risky = sub.at_risk or bands.get(sub.account_id) in ("at_risk", "critical")
        rows.append((renews, sub.id, sub.arr, risky, sub.currency))
    rows.sort()
    window = [r for r in rows if 0 <= (r[0] - on).days <= within_days]
    months: dict[dt.date, list[int]] = {}
    m = on.replace(day=1)
    while m <= on + dt.timedelta(days=120):
        months[m] = [0, 0]
        m = (m + dt.timedelta(days=32)).replace(day=1)
    for renews, _, arr, risky, _ in rows:
        if 0 <= (renews - on).days <= 120:
            months[renews.replace(day=1)][0] += arr
            months[renews.replace(day=1)][1] += arr if risky else 0
    return Expected(ids=[r[1] for r in window], count=len(window),
                    arr=sum(r[2] for r in window),
                    arr_at_risk=sum(r[2] for r in window if r[3]),
                    currencies=sorted({r[4] for r in window}),
                    buckets=[(m, a, r) for m, (a, r) in months.items()])


def _roles(sessions: sessionmaker[Session], user: User) -> set[str]:
    with sessions() as s:
        found = s.get(User, user.id)
        assert found is not None
        return set(found.roles)


@pytest.mark.parametrize("on", [
    None, dt.date(2027, 1, 31), dt.date(2028, 2, 29), dt.date(2026, 12, 1),
    pytest.param(dt.date(2027, 8, 31), marks=pytest.mark.postgres, id="postgres")])
def test_aggregates_and_pages_equal_a_row_by_row_count(
        sessions: sessionmaker[Session], on: dt.date | None) -> None:
    on = on or today()
    book = seed_book(sessions, on)
    for user in (book.desk, *book.reps):
        for days in view.WINDOWS:
            want = row_by_row(sessions, user, on, days)
            with sessions() as s:
                me = s.get(User, user.id)
                assert me is not None
                got = view.renewals(s, me, days, limit=7, on=on)
                seen = list(got.page.items)
                for number in range(2, got.page.pages + 1):
                    page = view.renewals(s, me, days, page=number, limit=7, on=on).page
                    assert page.number == number and len(page.items) <= 7
                    seen += page.items
                past = view.renewals(s, me, days, page=got.page.pages + 5, limit=7, on=on)
            where = (user.name, days, on)
            s_ = got.summary
            assert (s_.count, s_.arr, s_.arr_at_risk, s_.currencies) == (
                want.count, want.arr, want.arr_at_risk, want.currencies), where
            assert [(b.month, b.arr, b.arr_at_risk) for b in got.buckets] == want.buckets, where
            assert got.page.total == want.count
            assert got.page.pages == max(1, math.ceil(want.count / 7))
            assert [r.sub.id for r in seen] == want.ids, where
            assert all(0 <= r.days_left <= days for r in seen)
            # Past the end: the last page, as the list pages do.
            assert past.page.number == got.page.pages
            assert [r.sub.id for r in past.rows] == want.ids[(got.page.pages - 1) * 7:]
    # The book has something in every corner the checks above look at.
    desk = row_by_row(sessions, book.desk, on, 120)
    assert desk.count > 100 and 0 < desk.arr_at_risk < desk.arr
    assert desk.currencies == ["EUR", "USD"]
    assert all(arr for _, arr, _ in desk.buckets[:-1])


async def test_the_api_pages_and_keeps_every_field(settings: Settings,
                                                   sessions: sessionmaker[Session]) -> None:
    on = today()
    book = seed_book(sessions, on)
    want = row_by_row(sessions, book.desk, on, 120)
    async with serve(settings) as url:
        desk = await token_client(url, book.desk)
        r = (await desk.get("/api/v1/renewals?within_days=120&limit=9")).json()
        assert (r["page"], r["limit"], r["total"], r["prev"]) == (1, 9, want.count, None)
        assert r["pages"] == math.ceil(want.count / 9)
        assert r["summary"]["count"] == want.count and r["summary"]["arr"] == want.arr
        assert r["summary"]["currency_note"] == ("amounts in EUR, USD are added without "
                                                 "conversion (minor units)")
        seen, pages = [], 0
        while True:
            pages += 1
            assert len(r["renewals"]) == (9 if r["next"] else want.count - 9 * (pages - 1))
            for row in r["renewals"]:
                assert set(row) == ROW_FIELDS
            seen += r["renewals"]
            if r["next"] is None:
                break
            assert r["next"] == f"/api/v1/renewals?within_days=120&page={pages + 1}&limit=9"
            r = (await desk.get(r["next"])).json()
            assert r["prev"] == f"/api/v1/renewals?within_days=120&page={pages}&limit=9"
        assert pages == r["pages"] and [x["id"] for x in seen] == want.ids
        # A row as the store has it: risk from the flag or the account's band.
        with sessions() as s:
            for row in seen:
                sub = s.get(Subscription, row["id"])
                assert sub is not None
                band = s.scalar(select(AccountHealth.band).where(
                    AccountHealth.account_id == sub.account_id))
                assert (row["arr"], row["owner_id"], row["owner"], row["status"],
                        row["account"], row["health_band"], row["term_end"]) == (
                    sub.arr, sub.owner_id, sub.owner.name, sub.status, sub.account.name, band,
                    sub.term_end.isoformat())
                assert row["at_risk"] == (sub.at_risk or band in ("critical", "at_risk"))
                assert row["days_to_renewal"] == (sub.term_end - on).days + 1
        # The default is 50 a page; a page past the end is the last.
        r = (await desk.get("/api/v1/renewals?within_days=120")).json()
        assert (r["limit"], len(r["renewals"]), r["page"]) == (50, 50, 1)
        last = (await desk.get("/api/v1/renewals?within_days=120&page=999")).json()
        assert last["page"] == last["pages"] and last["next"] is None
        assert [x["id"] for x in last["renewals"]] == want.ids[50 * (last["pages"] - 1):]
        for query, field in (("limit=0", "limit"), ("limit=501", "limit"), ("page=0", "page"),
                             ("page=x", "page"), ("within_days=45", "within_days")):
            bad = await desk.get(f"/api/v1/renewals?{query}")
            assert (bad.status_code, bad.json().get("field")) == (422, field), query

        # A rep sees their own renewals, and the summary counts only those.
        for rep in book.reps:
            mine = row_by_row(sessions, rep, on, 90)
            client = await token_client(url, rep)
            r = (await client.get("/api/v1/renewals?within_days=90&limit=500")).json()
            assert [x["id"] for x in r["renewals"]] == mine.ids and mine.ids
            assert {x["owner_id"] for x in r["renewals"]} == {rep.id}
            assert (r["total"], r["summary"]["count"], r["summary"]["arr"],
                    r["summary"]["arr_at_risk"]) == (mine.count, mine.count, mine.arr,
                                                     mine.arr_at_risk)
            await client.aclose()
        finance = await token_client(url, book.finance)
        assert (await finance.get("/api/v1/renewals?within_days=90")).json()["total"] == \
            row_by_row(sessions, book.desk, on, 90).count
        await finance.aclose()
        await desk.aclose()


async def test_the_page_shows_one_page_with_its_pager(settings: Settings,
                                                      sessions: sessionmaker[Session]) -> None:
    on = today()
    book = seed_book(sessions, on)
    want = row_by_row(sessions, book.desk, on, 120)
    async with serve(settings) as url:
        web, _ = await browser_session(url, book.desk)
        html = (await web.get("/renewals?within_days=120&limit=7&page=2")).text
        assert re.findall(r'<tr id="sub-(\d+)"', html) == [str(i) for i in want.ids[7:14]]
        assert f"8–14 of {want.count:,} renewals" in html
        assert 'rel="prev" href="/renewals?limit=7&amp;within_days=120&amp;page=1"' in html
        assert 'rel="next" href="/renewals?limit=7&amp;within_days=120&amp;page=3"' in html
        assert f"Page 2 of {math.ceil(want.count / 7)}" in html
        assert 'href="/renewals?limit=7&amp;within_days=30"' in html  # the tabs keep the size
        assert f'<strong id="renewals-count">{want.count}</strong>' in html
        # 50 a page by default; a page past the end, or nonsense, still shows a page.
        html = (await web.get("/renewals?within_days=120")).text
        assert re.findall(r'<tr id="sub-(\d+)"', html) == [str(i) for i in want.ids[:50]]
        assert 'rel="prev"' not in html and 'href="/renewals?within_days=30"' in html
        html = (await web.get("/renewals?within_days=120&page=999")).text
        assert re.findall(r'<tr id="sub-(\d+)"', html) == [
            str(i) for i in want.ids[50 * (math.ceil(want.count / 50) - 1):]]
        html = (await web.get("/renewals?within_days=120&page=abc&limit=0")).text
        assert len(re.findall(r'<tr id="sub-(\d+)"', html)) == 50
        html = (await web.get("/renewals?within_days=%C2%B2&page=%C2%B2")).text
        assert f'<strong id="renewals-count">{row_by_row(sessions, book.desk, on, 90).count}' \
            in html
        await web.aclose()
        # A rep's page holds only their own renewals.
        rep = book.reps[1]
        mine = row_by_row(sessions, rep, on, 120)
        web, _ = await browser_session(url, rep)
        html = (await web.get("/renewals?within_days=120&limit=500")).text
        assert re.findall(r'<tr id="sub-(\d+)"', html) == [str(i) for i in mine.ids]
        assert f'<strong id="renewals-count">{mine.count}</strong>' in html
        await web.aclose()
