"""A won deal's billing schedule and an invoice's amounts. Pure.

*One-time* billing invoices the whole net total when the deal is won. *Annual in advance*
invoices one year's share at the win and on each anniversary: a term of 36 months is three
invoices; a 30-month term is three too, the last for the remaining 6 months. Each item's share
is split in minor units so the installments add up to the net total exactly (the remainder
goes to the first installment). Tax lines follow the account's region.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

BILLING_MODES = ("one_time", "annual")
PAYMENT_TERMS_DAYS = 30


@dataclass(frozen=True)
class Charge:
    description: str
    quantity: int
    amount: int
    """The item's net total over the whole term, minor units."""


@dataclass(frozen=True)
class Installment:
    index: int
    """1-based."""
    label: str
    issue_on: dt.date
    lines: tuple[tuple[str, int, int], ...]
    """(description, quantity, amount) of this installment, minor units."""

    @property
    def subtotal(self) -> int:
        return sum(a for _, _, a in self.lines)


def add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def schedule(charges: Sequence[Charge], mode: str, term_months: int,
             won_on: dt.date) -> list[Installment]:
    if mode not in BILLING_MODES:
        raise ValueError(f"billing is one of {', '.join(BILLING_MODES)}, not {mode!r}")
    if mode == "one_time" or term_months <= 12:
        return [Installment(1, "One-time" if mode == "one_time" else "Year 1 of 1", won_on,
                            tuple((c.description, c.quantity, c.amount) for c in charges))]
    years = -(-term_months // 12)
    shares = [min(12, term_months - 12 * k) for k in range(years)]  # months billed each year
    out = []
    for k, months in enumerate(shares):
        lines = []
        for c in charges:
            part = c.amount * months // term_months
            if k == 0:  # the first installment takes what integer division left over
                part += c.amount - sum(c.amount * m // term_months for m in shares)
            lines.append((f"{c.description} — year {k + 1} of {years}", c.quantity, part))
        out.append(Installment(k + 1, f"Year {k + 1} of {years} (annual in advance)",
                               add_months(won_on, 12 * k), tuple(lines)))
    return out


def tax_amount(base: int, pct: Decimal) -> int:
    return int((Decimal(base) * pct / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
