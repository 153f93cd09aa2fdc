"""Configuration and product rules on the demo catalog: each rule kind, bundles nested three
levels deep, the bill of materials, and the catalog document's checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cpq.catalog import (
    Catalog,
    CatalogError,
    Selection,
    allowed_options,
    bill_of_materials,
    configure,
)
from cpq.loader import parse_catalog

DEMO = Path(__file__).resolve().parents[1] / "dealdesk" / "demo" / "catalog.yaml"
ACCOUNTS = {"Stark Industries": 1, "Globex": 2}


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DEMO.read_text())
    return doc


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return parse_catalog(_doc(), ACCOUNTS.get).catalog


def body(*options: tuple[str, int]) -> Selection:
    return Selection("WS-BODY", 1, options=tuple(Selection(s, q) for s, q in options))


def ws(qty: int = 1, *, colour: str | None = None, body_options: tuple[tuple[str, int], ...] =
       (("CPU-16", 1),), extra: tuple[tuple[str, int], ...] = ()) -> Selection:
    attrs = {"colour": colour} if colour else {}
    return Selection("WS-9", qty, attrs, (body(*body_options),
                                          *(Selection(s, q) for s, q in extra)))


def test_a_valid_configuration_gets_defaults(catalog: Catalog) -> None:
    c = configure(catalog, ws())
    assert c.valid and not c.alerts
    assert c.selection.attributes == {"colour": "graphite"}
    assert sorted((o.sku, o.quantity) for o in c.selection.options) == [
        ("DSP-27", 1), ("WS-BODY", 1)]
    body_sel = c.selection.options[0]
    assert sorted((o.sku, o.quantity) for o in body_sel.options) == [
        ("CPU-16", 1), ("RAM-64", 2), ("SSD-2T", 1)]


def test_validation_rules_block_with_their_message(catalog: Catalog) -> None:
    both = configure(catalog, ws(body_options=(("CPU-16", 1), ("CPU-32", 1))))
    assert [(f.rule, f.path) for f in both.violations] == [("one-cpu", "WS-9 › WS-BODY")]
    assert "not both" in both.violations[0].message
    none = configure(catalog, ws(body_options=()))
    assert [f.rule for f in none.violations] == ["needs-cpu"]


def test_selection_rule_changes_the_configuration(catalog: Catalog) -> None:
    c = configure(catalog, ws(body_options=(("CPU-32", 1), ("GPU-PRO", 1), ("RAM-64", 1))))
    assert c.valid
    assert [f.rule for f in c.applied] == ["gpu-memory"]
    assert c.selection.options[0].option_qty("RAM-64") == 4


def test_filter_rule_limits_options_and_attributes(catalog: Catalog) -> None:
    silver = ws(colour="silver", extra=(("DSP-32", 1),))
    assert "DSP-32" not in allowed_options(catalog, silver)
    assert "DSP-32" in allowed_options(catalog, ws(extra=(("DSP-32", 1),)))
    c = configure(catalog, silver)
    assert [f.rule for f in c.violations] == ["silver-displays"]
    assert "(DSP-32)" in c.violations[0].message


def test_alert_rules_warn_without_blocking(catalog: Catalog) -> None:
    c = configure(catalog, ws(60, body_options=(("CPU-16", 1), ("GPU-PRO", 2))))
    assert c.valid
    assert sorted(f.rule for f in c.alerts) == ["large-fleet", "onsite-for-gpus"]


def test_option_quantities_and_required_options(catalog: Catalog) -> None:
    c = configure(catalog, ws(extra=(("DSP-27", 4),)))
    assert [f.rule for f in c.violations] == ["option-quantity"]
    assert "quantity 4 is outside 1–3" in c.violations[0].message
    hub = configure(catalog, Selection("ANL-HUB", 1, options=(Selection("ANL-SEAT", 0),)))
    assert "option-quantity" in [f.rule for f in hub.violations]


@pytest.mark.parametrize(("sel", "message"), [
    (Selection("NOPE"), "unknown SKU 'NOPE'"),
    (Selection("WS-9", options=(Selection("ANL-SEAT"),)), "ANL-SEAT is not an option of WS-9"),
    (Selection("WS-9", attributes={"size": "L"}), "has no attribute 'size'"),
    (Selection("WS-9", attributes={"colour": "pink"}), "'pink' is not a colour of WS-9"),
])
def test_unknown_references_raise(catalog: Catalog, sel: Selection, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        configure(catalog, sel)


def test_three_level_bundle_expands_to_a_bill_of_materials(catalog: Catalog) -> None:
    c = configure(catalog, ws(2, body_options=(("CPU-32", 1),)))
    rows = [(r.level, r.sku, r.quantity) for r in bill_of_materials(catalog, c.selection)]
    assert rows == [
        (0, "WS-9", 2), (1, "WS-BODY", 2), (2, "CPU-32", 2), (2, "RAM-64", 4),
        (2, "SSD-2T", 2), (2, "WS-PSU", 2), (3, "WS-FAN", 4), (2, "WS-CHASSIS", 2),
        (1, "DSP-27", 2), (1, "WS-KBD", 2), (1, "WS-MOUSE", 2)]


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["products"][0]["options"].append({"sku": "NOPE"}),
     r"products\[0\] \(WS-9\)\.options\[4\]: unknown SKU 'NOPE'"),
    (lambda d: d["products"].append(d["products"][0]), "SKU 'WS-9' appears twice"),
    (lambda d: d["products"][0]["list"].update({"GBP": "1.00"}), "GBP list price but no GBP cost"),
    (lambda d: d["products"][0]["list"].update({"USD": "12.345"}), "more decimals than USD"),
    (lambda d: d["rules"][0].update({"kind": "magic"}), r"rules\[0\]: kind must be one of"),
    (lambda d: d["schedules"][0]["tiers"][1].update({"from": 12}), "without gaps"),
    (lambda d: d["price_books"][0].update({"account": "Nobody"}), "no account named 'Nobody'"),
    (lambda d: d["price_books"][0].update({"valid_to": "2025-01-01"}), "valid_to is before"),
    (lambda d: d["price_books"][0]["entries"].update({"X-1": "1"}), "unknown SKU 'X-1'"),
    (lambda d: d["partners"]["bands"].update({"reseller": 120}), "between 0 and 100"),
    (lambda d: d.update({"extras": []}), "unknown section"),
])
def test_catalog_document_errors_name_their_place(change: Any, message: str) -> None:
    doc = _doc()
    change(doc)
    with pytest.raises(CatalogError, match=message):
        parse_catalog(doc, ACCOUNTS.get)
