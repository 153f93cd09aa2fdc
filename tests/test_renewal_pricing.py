"""Renewal quotes on the current price book: a won quote's catalog items renewed line by line
(``store.renewal_quotes``, rules in ``cpq.renewal``), by the subscription's method.

The quote is configured through the quote builder's own use case on catalog v1, won as a
deal is won, and the catalog is then saved again with new prices (v2) or without a product
(v3). The renewal quote is made by the RenewalWorkflow's activity against the real store, and
twice end to end on Temporal's time-skipping server (a discounted renewal submitted to its
chain by itself, an undiscounted one approved at once). Every expected amount is computed
here from the prices, discounts, quantities and uplift below.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities.mail import Mailer
from activities.renewals import RenewalActivities
from cpq.catalog import Selection
from cpq.pricing import PricedLine, PricedQuote, Step
from cpq.renewal import LinesMoved, renew
from dealdesk.settings import Settings
from store import invoicing
from store.commerce import QuoteItem
from store.models import AuditEvent, Quote, User
from store.quote_items import items_at
from store.subscriptions import Subscription, subscribe
from store.who import Who
from tests.cpq_support import Cast, cast
from tests.support import eventually
from tests.test_renewals import env, started
from web.services.catalog import save_catalog
from web.services.configurator import add_items
from workflows.renewal_messages import TermInput

__all__ = ["cast", "env"]

UPLIFT = Decimal("3")
SEATS, SEAT_OFF = 10, Decimal("20")  # 10 seats at 20 % off
SUPPORT, SUPPORT_OFF = 2, Decimal("0")  # 2 support plans at list
V1 = {"SEAT": ("100.00", "20.00"), "SUPPORT": ("50.00", "10.00")}  # list, cost (USD)
V2 = {"SEAT": ("110.00", "22.00"), "SUPPORT": ("60.00", "12.00")}


def catalog(prices: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {"products": [
        {"sku": sku, "name": f"{sku.title()} plan", "family": "software",
         "list": {"USD": lst}, "cost": {"USD": cost}} for sku, (lst, cost) in prices.items()]}


def minor(major: str) -> int:
    return int(Decimal(major) * 100)


def off(unit: int, pct: Decimal) -> int:
    """A unit price less ``pct`` %, half up (the engine's one rounding)."""
    return int((unit * (1 - pct / 100)).to_integral_value(ROUND_HALF_UP))


def raised(unit: int) -> int:
    return int((unit * (1 + UPLIFT / 100)).to_integral_value(ROUND_HALF_UP))


def save(sessions: sessionmaker[Session], doc: dict[str, Any]) -> None:
    with sessions.begin() as s:
        save_catalog(s, "", None, document=copy.deepcopy(doc))


def won_configured(sessions: sessionmaker[Session], settings: Settings, cast: Cast,
                   items: list[tuple[str, int, Decimal]], method: str,
                   renews_in: dt.timedelta = dt.timedelta(days=60)) -> int:
    """A quote configured on catalog v1 with ``items``, approved and won; its
    subscription's id, set to renew in ``renews_in`` with ``method``."""
    save(sessions, catalog(V1))
    with sessions.begin() as s:
        rep = s.get_one(User, cast.rep.id)
        quote = Quote(account_id=cast.account, owner_id=rep.id, title="Platform",
                      currency="USD", list_amount=0, net_amount=0, cost_amount=0,
                      term_months=12)
        s.add(quote)
        s.flush()
        add_items(s, quote, rep, [(Selection(sku, qty), pct) for sku, qty, pct in items],
                  defaults=False)
        quote.status = "approved"
        invoicing.win(s, quote, Who.system("test"), via="manual")
        today = dt.datetime.now(dt.UTC).date()
        sub = subscribe(s, quote, Who.system("test"), task_queue=settings.task_queue,
                        provider=settings.org_name, prefix=settings.workflow_prefix,
                        won_on=today)
        sub.term_end = today + renews_in - dt.timedelta(days=1)
        sub.renewal_pricing, sub.uplift_pct = method, str(UPLIFT)
        return sub.id


def renew_now(sessions: sessionmaker[Session], settings: Settings, sub_id: int) -> Quote:
    """The RenewalWorkflow's activity, called as the workflow calls it."""
    acts = RenewalActivities(sessions, Mailer(sessions, None), settings.base_url)
    quote_id = acts.make_renewal_quote(TermInput(sub_id, 1, dt.date.today().isoformat()))
    with sessions() as s:
        quote = s.get_one(Quote, quote_id)
        s.expunge(quote)
        return quote


def lines(sessions: sessionmaker[Session], quote: Quote) -> dict[str, tuple[int, int, int]]:
    """SKU → (quantity, list unit, net unit) of the renewal quote's items."""
    with sessions() as s:
        items = items_at(s, quote.id, quote.version)
        assert quote.list_amount == sum(i.list_total for i in items)
        assert quote.net_amount == sum(i.net_total for i in items)
        assert quote.cost_amount == sum(i.cost_total for i in items)
        return {ln["sku"]: (ln["quantity"], ln["list_unit"], ln["net_unit"])
                for i in items for ln in i.priced["lines"]}


def expected_net(method: str, sku: str, pct: Decimal) -> int:
    """The renewal's net unit of ``sku`` by ``method``, from the contracted (v1) and the
    current (v2) list prices."""
    then_list, now_list = minor(V1[sku][0]), minor(V2[sku][0])
    contracted = off(then_list, pct)
    if method == "same":
        return contracted
    if method == "list":
        return off(now_list, pct)
    return min(raised(contracted), now_list)  # uplift, never above today's list


def priced(*lines: tuple[str, int, int, int, bool]) -> PricedQuote:
    """Lines (sku, quantity, list unit, net unit, partner step) as the engine prices them."""
    out = tuple(PricedLine(sku, sku, "software", qty, None, lst, net, lst * qty, net * qty, 0,
                           0.0, (Step("list", Decimal(lst), ""),
                                 *((Step("partner", Decimal(lst), ""),) if partner else ())))
                for sku, qty, lst, net, partner in lines)
    return PricedQuote("USD", out, sum(x.list_total for x in out),
                       sum(x.net_total for x in out), 0, 0.0, 0.0, (), ())


def test_the_uplift_is_capped_at_the_partners_standard_price() -> None:
    # A reseller at 25 % standard discount: today's list 10000 is 7500 to the partner; a
    # contracted 7400 uplifted 3 % (7622) would charge more than that, so it stops at 7500.
    now = priced(("SEAT", 4, 10_000, 7_500, True), ("BUNDLED", 4, 0, 0, False))
    then = priced(("SEAT", 4, 9_000, 7_400, True), ("BUNDLED", 4, 0, 0, False)).lines
    renewed = renew(now, then, "uplift", UPLIFT, Decimal(25))
    assert [(ln.net_unit, ln.discount_pct) for ln in renewed.lines] == [(7_500, 0.0), (0, 0.0)]
    assert renewed.net_total == 7_500 * 4 and renewed.max_discount_pct == 0.0
    # A list that fell below the contracted price: "same" keeps the price, never a negative
    # discount.
    same = renew(priced(("SEAT", 4, 7_000, 7_000, False)),
                 priced(("SEAT", 4, 9_000, 7_400, False)).lines, "same", UPLIFT, Decimal(0))
    assert (same.lines[0].net_unit, same.lines[0].discount_pct) == (7_400, 0.0)


def test_lines_that_moved_are_not_matched() -> None:
    with pytest.raises(LinesMoved):
        renew(priced(("SEAT", 5, 100, 100, False)), priced(("SEAT", 4, 100, 90, False)).lines,
              "uplift", UPLIFT, Decimal(0))


@pytest.mark.parametrize("method", ["uplift", "list", "same"])
def test_the_renewal_reprices_each_item_by_its_method(
        settings: Settings, sessions: sessionmaker[Session], cast: Cast, method: str) -> None:
    sub_id = won_configured(sessions, settings, cast, [("SEAT", SEATS, SEAT_OFF),
                                                      ("SUPPORT", SUPPORT, SUPPORT_OFF)], method)
    save(sessions, catalog(V2))
    quote = renew_now(sessions, settings, sub_id)
    assert lines(sessions, quote) == {
        "SEAT": (SEATS, minor(V2["SEAT"][0]), expected_net(method, "SEAT", SEAT_OFF)),
        "SUPPORT": (SUPPORT, minor(V2["SUPPORT"][0]),
                    expected_net(method, "SUPPORT", SUPPORT_OFF))}
    assert quote.cost_amount == sum(minor(V2[k][1]) * n for k, n in
                                    (("SEAT", SEATS), ("SUPPORT", SUPPORT)))
    assert quote.status == "draft"  # 20 % off seats, whichever method: the chain decides
    with sessions() as s:
        assert s.get_one(Subscription, sub_id).renewal_quote_id == quote.id
    # Once per term: a retry returns the same quote and makes no items.
    assert renew_now(sessions, settings, sub_id).id == quote.id
    with sessions() as s:
        assert len(s.scalars(select(QuoteItem).where(QuoteItem.quote_id == quote.id)).all()) == 2


def test_a_product_no_longer_sold_keeps_its_price_uplifted(
        settings: Settings, sessions: sessionmaker[Session], cast: Cast) -> None:
    sub_id = won_configured(sessions, settings, cast, [("SEAT", SEATS, SEAT_OFF),
                                                      ("SUPPORT", SUPPORT, SUPPORT_OFF)],
                            "uplift")
    save(sessions, catalog({"SEAT": V2["SEAT"]}))  # support is no longer sold
    quote = renew_now(sessions, settings, sub_id)
    support_list = minor(V1["SUPPORT"][0])
    assert lines(sessions, quote)["SUPPORT"] == (
        SUPPORT, raised(support_list), raised(off(support_list, SUPPORT_OFF)))
    assert lines(sessions, quote)["SEAT"][2] == expected_net("uplift", "SEAT", SEAT_OFF)
    with sessions() as s:
        carried = [i for i in items_at(s, quote.id, 1) if i.selection["sku"] == "SUPPORT"]
        assert carried[0].cost_total == raised(minor(V1["SUPPORT"][1])) * SUPPORT
        assert [a["rule"] for a in carried[0].priced["alerts"]] == ["renewal-carried"]
        row = s.scalar(select(AuditEvent).where(
            AuditEvent.action == "subscription.renewal_quoted",
            AuditEvent.entity == f"subscription:{sub_id}"))
        assert row is not None and row.data["carried"] == ["SUPPORT"]


async def test_a_discounted_renewal_goes_to_its_chain_and_an_undiscounted_is_approved(
        env: WorkflowEnvironment, settings: Settings, sessions: sessionmaker[Session],
        cast: Cast) -> None:
    discounted = won_configured(sessions, settings, cast, [("SEAT", SEATS, SEAT_OFF),
                                                          ("SUPPORT", SUPPORT, SUPPORT_OFF)],
                                "uplift")
    at_list = won_configured(sessions, settings, cast, [("SUPPORT", SUPPORT, SUPPORT_OFF)],
                             "list")
    save(sessions, catalog(V2))
    for sub_id in (discounted, at_list):  # each renews in 60 days: the quote is made at once
        await started(env.client, sessions, settings, sub_id)

    def renewal(sub_id: int) -> Quote | None:
        with sessions() as s:
            sub = s.get_one(Subscription, sub_id)
            return s.get(Quote, sub.renewal_quote_id) if sub.renewal_quote_id else None

    # Seats at 20 % off list: made a draft, then submitted through its chain by itself.
    submitted = await eventually(lambda: (q := renewal(discounted)) is not None
                                 and q.status == "pending_approval" and q, timeout=30)
    assert lines(sessions, submitted)["SEAT"][2] == expected_net("uplift", "SEAT", SEAT_OFF)
    assert submitted.net_amount < submitted.list_amount
    # Support at today's list price: no discount, approved at once (and, won by hand, with
    # no customer signer on record, left to its owner to send).
    approved = await eventually(lambda: renewal(at_list), timeout=30)
    assert approved.status == "approved"
    assert approved.net_amount == approved.list_amount == minor(V2["SUPPORT"][0]) * SUPPORT


def test_a_line_above_list_does_not_hide_another_lines_discount(
        settings: Settings, sessions: sessionmaker[Session], cast: Cast) -> None:
    # Seats kept at their contracted price above today's (fallen) list; support 5 % off.
    sub_id = won_configured(sessions, settings, cast, [("SEAT", SEATS, SEAT_OFF),
                                                      ("SUPPORT", SUPPORT, Decimal("5"))],
                            "same")
    fallen = {"SEAT": ("70.00", "20.00"), "SUPPORT": V1["SUPPORT"]}
    save(sessions, catalog(fallen))
    quote = renew_now(sessions, settings, sub_id)
    assert quote.net_amount > quote.list_amount  # in total, above list…
    assert quote.max_discount_pct == 5.0 and quote.status == "draft"  # …but the chain decides
