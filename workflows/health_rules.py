"""Customer health, pure: each measure normalised to 0–100, a weighted score by groups, and a
band. No I/O, so the store's recompute, the pages and the tests share one rule.

A measure's raw value means:

- ``usage``: % of the licensed product in use (0–100);
- ``support_tickets``: open support tickets (fewer is better);
- ``nps``: Net Promoter Score, -100 … 100;
- ``payment``: days the oldest unpaid invoice is overdue (0: paid on time);
- ``engagement``: 0–100 (meetings, logins of the buyer's people; whatever the CSV says).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MEASURES = ("usage", "support_tickets", "nps", "payment", "engagement")
SOURCES = ("csv", "api", "invoices")
BANDS = ("good", "at_risk", "critical")
"""Best first: a band later in this tuple is worse."""

GROUPS: dict[str, tuple[int, tuple[str, ...]]] = {
    "product": (40, ("usage",)),
    "support": (20, ("support_tickets",)),
    "sentiment": (20, ("nps",)),
    "commercial": (20, ("payment", "engagement")),
}
"""Each group's weight (they add up to 100) and its measures, averaged within the group. A
group with none of its measures drops out and the others' weights are scaled up to 100."""

RANGES: dict[str, tuple[float, float]] = {
    "usage": (0, 100), "support_tickets": (0, 1_000_000), "nps": (-100, 100),
    "payment": (0, 36_500), "engagement": (0, 100)}
"""The values a measure may take; anything else is refused at the edge."""

GOOD_FROM = 70
CRITICAL_BELOW = 40
TICKET_COST = 10
"""Points off per open ticket: none is 100, ten or more is 0."""
OVERDUE_DAY_COST = 2
"""Points off per day overdue: on time is 100, 50 days or more is 0."""


def check(measure: str, value: float) -> str | None:
    """Why ``value`` can't be a ``measure``, or None when it can."""
    if measure not in RANGES:
        return f"unknown measure {measure!r}: use one of {', '.join(MEASURES)}"
    if not math.isfinite(value):
        return f"{measure} must be a finite number"
    low, high = RANGES[measure]
    if not low <= value <= high:
        return f"{measure} must be from {low:g} to {high:g}"
    return None


def normalise(measure: str, value: float) -> float:
    """The measure as 0–100, higher is healthier."""
    if measure == "support_tickets":
        points = 100 - TICKET_COST * value
    elif measure == "nps":
        points = (value + 100) / 2
    elif measure == "payment":
        points = 100 - OVERDUE_DAY_COST * value
    else:
        points = value
    return max(0.0, min(100.0, points))


def band_of(score: int) -> str:
    if score >= GOOD_FROM:
        return "good"
    return "at_risk" if score >= CRITICAL_BELOW else "critical"


def worse(new: str, old: str | None) -> bool:
    """Whether moving from ``old`` to ``new`` is a drop (a critical status change)."""
    return old is not None and BANDS.index(new) > BANDS.index(old)


@dataclass(frozen=True)
class Health:
    score: int
    band: str
    components: dict[str, dict[str, float]]
    """``{"measures": {measure: 0–100}, "groups": {group: 0–100}, "weights": {group: %}}``:
    the weights as applied, after missing groups were re-weighted."""


def score(values: dict[str, float]) -> Health | None:
    """The health of an account from its latest value per measure; None without any."""
    points = {m: normalise(m, v) for m, v in values.items() if m in RANGES}
    groups = {g: sum(points[m] for m in ms if m in points) / sum(m in points for m in ms)
              for g, (_, ms) in GROUPS.items() if any(m in points for m in ms)}
    if not groups:
        return None
    total = sum(GROUPS[g][0] for g in groups)
    weights = {g: GROUPS[g][0] * 100 / total for g in groups}
    result = round(sum(groups[g] * weights[g] for g in groups) / 100)
    return Health(result, band_of(result), {
        "measures": {m: round(p, 1) for m, p in points.items()},
        "groups": {g: round(p, 1) for g, p in groups.items()},
        "weights": {g: round(w, 1) for g, w in weights.items()}})
