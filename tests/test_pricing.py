"""The pricing engine: every step of the waterfall, every price type, and docs/pricing.md's
worked examples (read from the file, so the docs and the engine can't drift apart)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest

from cpq.catalog import Catalog, CatalogError, Option, Product, Selection
from cpq.pricing import (
    Deal,
    DiscountSchedule,
    Item,
    LineIn,
    PriceBook,
    Pricer,
    PriceRules,
    PricingError,
    Rounding,
    Tier,
    flatten,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "pricing.md"
DAY = dt.date(2026, 11, 26)
ACME, GLOBEX = 1, 2
TIERS = (Tier(1, 10, Decimal(0)), Tier(11, 50, Decimal(10)), Tier(51, None, Decimal(20)))


def catalog() -> Catalog:
    return Catalog({
        "ANL-SEAT": Product("ANL-SEAT", "Analytics seat", "software",
                            list_prices={"USD": 10_000, "EUR": 9_000}, costs={"USD": 2_000}),
        "ANL-HUB": Product("ANL-HUB", "Analytics hub", "platform", list_prices={"USD": 500_000},
                           costs={"USD": 100_000},
                           options=(Option("ANL-SEAT", min_qty=1, max_qty=500, default_qty=5),
                                    Option("ANL-ONB", bundled=True, default_qty=1))),
        "ANL-ONB": Product("ANL-ONB", "Onboarding", "services", list_prices={"USD": 250_000},
                           costs={"USD": 120_000}),
        "SUP-STD": Product("SUP-STD", "Standard support", "support",
                           list_prices={"USD": 12_345}, costs={"USD": 1_000}),
    })


def rules(mode: str = "range", **over: object) -> PriceRules:
    books = [
        PriceBook(10, "Acme 2026 contract", "account", "USD", {"ANL-SEAT": 7_500},
                  account_id=ACME, valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 12, 31)),
        PriceBook(11, "Acme 2025 contract", "account", "USD", {"ANL-SEAT": 5_000},
                  account_id=ACME, valid_from=dt.date(2025, 1, 1), valid_to=dt.date(2025, 12, 31)),
        PriceBook(12, "Distributor net 2026", "channel", "USD", {"ANL-SEAT": 7_000},
                  channel="distributor", net=True),
        PriceBook(13, "Web store", "channel", "USD", {"ANL-SEAT": 9_500}, channel="web"),
        PriceBook(14, "Globex EUR contract", "account", "EUR", {"ANL-SEAT": 8_000},
                  account_id=GLOBEX),
    ]
    fields: dict[str, object] = dict(
        books=books,
        schedules=[DiscountSchedule(1, "Seat volume", mode, TIERS,  # type: ignore[arg-type]
                                    skus=("ANL-SEAT",))],
        partner_discounts={("reseller", "gold"): Decimal(20), ("reseller", "silver"): Decimal(10),
                           ("distributor", "authorised"): Decimal(30)},
        channel_bands={"reseller": Decimal(25), "distributor": Decimal(35)},
    )
    fields.update(over)
    return PriceRules(**fields)  # type: ignore[arg-type]


def price(lines: list[LineIn], mode: str = "range", **deal: object) -> Pricer:
    d: dict[str, object] = dict(currency="USD", price_date=DAY, account_id=GLOBEX)
    d.update(deal)
    return Pricer(catalog(), rules(mode), Deal(**d))  # type: ignore[arg-type]


def one(qty: int, mode: str = "range", discount: str = "0", **deal: object):  # type: ignore[no-untyped-def]
    return price([], mode, **deal).price([LineIn("ANL-SEAT", qty, Decimal(discount))]).lines[0]


# --- docs/pricing.md's worked examples -------------------------------------------------

SCENARIOS: dict[str, dict[str, object]] = {
    "1a": {"mode": "range"}, "1b": {"mode": "slab"}, "1c": {"mode": "range"},
    "1d": {"mode": "slab"}, "1e": {"mode": "slab"},
    "2a": {"account_id": ACME}, "2b": {"account_id": ACME},
    "3a": {"channel": "reseller", "partner_tier": "gold"},
    "3b": {"channel": "reseller", "partner_tier": "gold", "discount": "10"},
    "3c": {"channel": "distributor", "partner_tier": "authorised"},
}


def _doc_rows() -> list[tuple[str, int, int, int]]:
    rows = []
    for m in re.finditer(r"^\| (\d[a-z]) \| [^|]+ \| (\d+) \| ([\d,.]+) \| ([\d,.]+) \|$",
                         DOC.read_text(), re.M):
        def cents(s: str) -> int:
            return round(Decimal(s.replace(",", "")) * 100)
        rows.append((m[1], int(m[2]), cents(m[3]), cents(m[4])))
    return rows


def test_docs_carry_every_scenario() -> None:
    assert sorted(r[0] for r in _doc_rows()) == sorted(SCENARIOS)


@pytest.mark.parametrize(("example", "qty", "unit", "total"), _doc_rows())
def test_worked_example(example: str, qty: int, unit: int, total: int) -> None:
    setup = dict(SCENARIOS[example])
    mode = str(setup.pop("mode", "range"))
    discount = str(setup.pop("discount", "0"))
    line = one(qty, mode, discount, **setup)
    assert (line.net_unit, line.net_total) == (unit, total)


def test_channel_guard_fires_below_the_band_only() -> None:
    assert not one(60, channel="reseller", partner_tier="gold").channel_conflict
    line = one(60, discount="10", channel="reseller", partner_tier="gold")
    assert line.channel_conflict and line.direct_unit == 8_000
    assert line.discount_pct == 28.0
    assert not one(60, channel="distributor", partner_tier="authorised").channel_conflict
    q = price([], channel="reseller", partner_tier="gold").price(
        [LineIn("ANL-SEAT", 60, Decimal(10)), LineIn("SUP-STD", 1)])
    assert q.channel_conflicts == ("ANL-SEAT",) and "ANL-SEAT" in q.warnings[0]
    assert not one(60, discount="30").channel_conflict  # direct deals have no guard


# --- each step and price type ----------------------------------------------------------

def test_waterfall_records_each_step_in_order() -> None:
    line = one(60, "range", "5", account_id=GLOBEX, channel="reseller", partner_tier="silver",
               header_discount_pct=Decimal(2))
    assert [s.name for s in line.steps] == ["list", "volume", "partner", "manual", "header",
                                            "net"]
    assert [round(s.unit, 4) for s in line.steps] == [
        Decimal(10_000), Decimal(8_000), Decimal(7_200), Decimal(6_840),
        Decimal("6703.2"), Decimal(6_703)]
    assert line.list_unit == 10_000 and line.net_unit == 6_703


def test_contracted_price_replaces_list_and_skips_volume() -> None:
    line = one(60, account_id=ACME)
    assert [s.name for s in line.steps] == ["list", "contracted", "net"]
    assert line.steps[1].note == "Acme 2026 contract"


def test_expired_contract_does_not_apply() -> None:
    line = one(5, account_id=ACME, price_date=dt.date(2027, 1, 2))
    assert line.net_unit == 10_000


def test_channel_price_book_sets_the_list_price() -> None:
    line = one(5, channel="web")
    assert line.list_unit == 9_500 and line.steps[0].note == "Web store"


def test_family_schedule_applies_when_the_sku_has_none() -> None:
    r = rules(schedules=[DiscountSchedule(2, "Support volume", "range",
                                          (Tier(3, None, Decimal(50)),), families=("support",))])
    p = Pricer(catalog(), r, Deal("USD", DAY, GLOBEX))
    assert p.price([LineIn("SUP-STD", 3)]).lines[0].net_unit == 6_173  # 61.725 rounded half up


@pytest.mark.parametrize(("rounding", "unit"), [
    (Rounding(1, "half_up"), 6_173), (Rounding(1, "half_even"), 6_172),
    (Rounding(1, "down"), 6_172), (Rounding(100, "half_up"), 6_200),
    (Rounding(100, "up"), 6_200), (Rounding(100, "down"), 6_100)])
def test_rounding_rules(rounding: Rounding, unit: int) -> None:
    r = rules(schedules=[DiscountSchedule(2, "half", "range", (Tier(1, None, Decimal(50)),),
                                          skus=("SUP-STD",))], rounding={"USD": rounding})
    p = Pricer(catalog(), r, Deal("USD", DAY, GLOBEX))
    assert p.price([LineIn("SUP-STD", 1)]).lines[0].net_unit == unit


def test_currencies_use_their_own_prices_and_books() -> None:
    assert one(5, currency="EUR", account_id=ACME).net_unit == 9_000
    assert one(5, currency="EUR").net_unit == 8_000  # Globex's EUR contract, unpinned
    pinned = one(5, currency="EUR", account_id=GLOBEX, price_book="Globex EUR contract")
    assert pinned.net_unit == 8_000
    with pytest.raises(PricingError, match="no GBP price for ANL-SEAT"):
        one(5, currency="GBP")


def test_totals_margin_and_discount_facts() -> None:
    q = price([]).price([LineIn("ANL-SEAT", 60), LineIn("SUP-STD", 2, Decimal(10))])
    assert q.list_total == 600_000 + 24_690
    assert q.net_total == 480_000 + 2 * 11_111
    assert q.cost_total == 60 * 2_000 + 2 * 1_000
    assert q.max_discount_pct == 20.0
    assert q.margin_pct == round(100 * (q.net_total - q.cost_total) / q.net_total, 2)


def test_bundles_flatten_to_lines_with_bundled_options_free() -> None:
    items = [Item(Selection("ANL-HUB", 2, options=(Selection("ANL-SEAT", 30),
                                                   Selection("ANL-ONB", 1))), Decimal(5))]
    lines = flatten(catalog(), items)
    assert [(ln.sku, ln.quantity, ln.parent, ln.bundled) for ln in lines] == [
        ("ANL-HUB", 2, None, False), ("ANL-SEAT", 60, 0, False), ("ANL-ONB", 2, 0, True)]
    q = price([]).price(lines)
    assert q.lines[2].net_total == 0 and q.lines[2].cost_total == 240_000
    assert q.lines[1].net_unit == 7_600  # 60 seats: range 20%, then the 5% line discount


# --- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize(("deal", "message"), [
    ({"price_book": "Acme 2025 contract", "account_id": ACME},
     "valid 2025-01-01 to 2025-12-31, not on"),
    ({"price_book": "Globex EUR contract"}, "is in EUR, the quote in USD"),
    ({"price_book": "Acme 2026 contract"}, "belongs to another account"),
    ({"price_book": "Web store"}, "is for the web channel"),
    ({"price_book": "Nope"}, "no price book named 'Nope'"),
    ({"channel": "reseller"}, "needs the partner's tier"),
    ({"channel": "reseller", "partner_tier": "platinum"}, "no partner discount"),
])
def test_bad_deals_are_refused_by_name(deal: dict[str, object], message: str) -> None:
    with pytest.raises(PricingError, match=message):
        one(5, **deal)


@pytest.mark.parametrize(("line", "message"), [
    (LineIn("ANL-SEAT", 0), "line 1 \\(ANL-SEAT\\): quantity must be at least 1, not 0"),
    (LineIn("ANL-SEAT", -3), "quantity must be at least 1, not -3"),
    (LineIn("ANL-SEAT", 1, Decimal(101)), "a discount is between 0 and 100%"),
])
def test_bad_lines_are_refused_by_name(line: LineIn, message: str) -> None:
    with pytest.raises(PricingError, match=message):
        price([]).price([line])


def test_unknown_sku_is_refused() -> None:
    with pytest.raises(CatalogError, match="unknown SKU 'NOPE'"):
        price([]).price([LineIn("NOPE", 1)])
