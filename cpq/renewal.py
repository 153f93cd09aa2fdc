"""Renewal pricing: the next term's lines, priced by the subscription's renewal pricing
method. Pure: the caller prices the item on the current catalog (:class:`cpq.pricing.Pricer`)
and hands over those lines with the contracted ones they renew.

The methods (Salesforce CPQ's "renewal pricing method", per subscription):

- ``uplift`` (the default): the contracted net unit price × (1 + uplift %), **capped at the
  current list price** (after the partner's standard discount on partner deals). The uplift
  closes a discount the customer had; it never charges more than anyone pays today. So a
  line sold at list renews at today's list, and a 20 % discount with a 3 % uplift renews at
  about 17.6 % off the old list, or less off a list that has risen since.
- ``list``: the current price book's price for the account's channel, with the contracted
  discounts kept (the line's and the quote's discount %, re-applied by the pricing engine).
- ``same``: the contracted net unit prices, unchanged.

The list price shown is always the current one, so a line's discount (and with it whether
the approval chain must look at the renewal) is measured against today's list.

A line whose product is no longer sold has no current price: it is **carried** at its
contracted prices (list, net and cost) uplifted, or unchanged under ``same``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from cpq.pricing import PricedLine, PricedQuote, Step

RenewalMethod = Literal["uplift", "list", "same"]
RENEWAL_METHODS: tuple[RenewalMethod, ...] = ("uplift", "list", "same")
DEFAULT_RENEWAL_METHOD: RenewalMethod = "uplift"
METHOD_NOTES: Mapping[str, str] = {
    "uplift": "the contracted prices uplifted, at most today's list price",
    "list": "today's list prices, the contracted discounts kept",
    "same": "the contracted prices kept"}
"""Each method in a few words, for the pages that show or choose it."""
_HUNDRED = Decimal(100)


class LinesMoved(ValueError):
    """The current catalog flattens the item into other lines than were contracted (an
    option moved): the contracted prices can't be matched line by line."""


def raised(amount: int, uplift_pct: Decimal) -> int:
    """``amount`` × (1 + ``uplift_pct`` %), to the minor unit, half up."""
    return int((Decimal(amount) * (_HUNDRED + uplift_pct) / _HUNDRED)
               .to_integral_value(ROUND_HALF_UP))


def line_of(stored: Mapping[str, Any]) -> PricedLine:
    """A priced line as a quote item stores it (``priced["lines"]``), back as a value."""
    steps = tuple(Step(s["name"], Decimal(s["unit"]), s["note"]) for s in stored["steps"])
    fields = {f.name for f in dataclasses.fields(PricedLine)}
    return PricedLine(**{**{k: v for k, v in stored.items() if k in fields}, "steps": steps})


def renew(current: PricedQuote, contracted: Sequence[PricedLine], method: RenewalMethod,
          uplift_pct: Decimal, partner_pct: Decimal) -> PricedQuote:
    """The item's current lines with their net prices set by ``method`` from the contracted
    ones. ``partner_pct``: the deal's standard partner discount (0 for direct deals)."""
    if method == "list":
        return current
    if [(c.sku, c.quantity) for c in current.lines] != [(c.sku, c.quantity) for c in contracted]:
        raise LinesMoved("the item's lines differ from the contracted ones")
    lines = []
    for now, then in zip(current.lines, contracted, strict=True):
        partner = partner_pct if any(s.name == "partner" for s in now.steps) else Decimal(0)
        reference = Decimal(now.list_unit) * (1 - partner / _HUNDRED)
        if method == "same":
            net, note = then.net_unit, "renewal: the contracted unit price kept"
        else:
            net = min(raised(then.net_unit, uplift_pct),
                      int(reference.to_integral_value(ROUND_HALF_UP)))
            note = (f"renewal: the contracted unit price uplifted {uplift_pct}%, at most the "
                    "current list price")
        lines.append(_priced_at(now, net, reference, note))
    return _totals(current, lines)


def carry(contracted: Sequence[PricedLine], method: RenewalMethod, uplift_pct: Decimal,
          currency: str) -> PricedQuote:
    """Lines of a product no longer sold, at their contracted prices, uplifted unless the
    method keeps prices the same."""
    pct = Decimal(0) if method == "same" else uplift_pct
    lines = []
    for c in contracted:
        net = raised(c.net_unit, pct)
        lines.append(dataclasses.replace(
            c, list_unit=raised(c.list_unit, pct), list_total=raised(c.list_total, pct),
            net_unit=net, net_total=net * c.quantity, cost_total=raised(c.cost_total, pct),
            steps=(*c.steps, Step("renewal", Decimal(net),
                                  f"renewal: no longer in the catalog; the contracted price "
                                  f"uplifted {pct}%"))))
    template = PricedQuote(currency, (), 0, 0, 0, 0.0, 0.0, (), ())
    return _totals(template, lines)


def _priced_at(line: PricedLine, net_unit: int, reference: Decimal, note: str) -> PricedLine:
    discount = 0.0 if not reference else float(100 * (1 - net_unit / reference))
    return dataclasses.replace(
        line, net_unit=net_unit, net_total=net_unit * line.quantity,
        discount_pct=round(max(discount, 0.0), 2),
        steps=(*line.steps, Step("renewal", Decimal(net_unit), note)))


def _totals(base: PricedQuote, lines: Sequence[PricedLine]) -> PricedQuote:
    net = sum(ln.net_total for ln in lines)
    cost = sum(ln.cost_total for ln in lines)
    margin = 0.0 if net <= 0 else 100 * (net - cost) / net
    return dataclasses.replace(
        base, lines=tuple(lines), list_total=sum(ln.list_total for ln in lines),
        net_total=net, cost_total=cost,
        max_discount_pct=max((ln.discount_pct for ln in lines), default=0.0),
        margin_pct=round(margin, 2))
