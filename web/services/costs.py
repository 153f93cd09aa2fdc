"""Who sees costs and margins: the deal desk, finance, the CFO, auditors and admins.

The rule the catalog's exports set first (costs and every account's contracted prices are
not for reps), applied to everything that carries a cost or a margin: the quote and items
API, the builder's totals, the quote and task pages. One helper, used everywhere.
"""

from __future__ import annotations

from typing import Any, Protocol

COST_READERS = ("deal_desk", "finance", "cfo", "auditor", "admin")
COST_KEYS = frozenset({"cost_total", "cost_amount", "cost_unit", "margin_pct"})


class HasRoles(Protocol):
    @property
    def roles(self) -> frozenset[str]: ...


def sees_costs(user: HasRoles | None) -> bool:
    return user is not None and bool(user.roles.intersection(COST_READERS))


def without_costs(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists) with every cost and margin key left out, at any
    depth: an item's priced lines carry their own ``cost_total``."""
    if isinstance(value, dict):
        return {k: without_costs(v) for k, v in value.items() if k not in COST_KEYS}
    if isinstance(value, list):
        return [without_costs(v) for v in value]
    return value


def shown(user: HasRoles | None, value: Any) -> Any:
    """``value`` as this user may see it."""
    return value if sees_costs(user) else without_costs(value)
