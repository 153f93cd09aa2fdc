"""Money as integer minor units plus an ISO 4217 code: each currency's decimals, parsing
and formatting. Integer arithmetic only: a float slipped in would print its rounding error."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit is not a hundredth; every other code has 2 decimals.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                     "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4, "UYW": 4,
}
_ISO_CODE = re.compile(r"[A-Z]{3}")
MAX_MINOR = 10**15
"""The largest amount anything holds, in minor units (10 trillion dollars; a quadrillion yen):
room for any deal, and far from the store's 64-bit integers even summed over a quote's lines."""


class MoneyError(ValueError):
    """Not a currency code, or not an amount in that currency."""


def minor_exponent(currency: str) -> int:
    """Decimals of ``currency``'s minor unit: 0 for JPY or KRW, 3 for KWD or BHD, else 2."""
    if not _ISO_CODE.fullmatch(currency):
        raise MoneyError(f"currency {currency!r} is not an ISO 4217 code: "
                         "use three capital letters, e.g. 'USD'")
    return _EXPONENTS.get(currency, 2)


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """``"1,234.5"`` USD → 123450. Refuses what isn't an amount, has too many decimals, or is
    beyond ±:data:`MAX_MINOR` minor units."""
    shown = repr(str(amount)[:40])
    try:
        value = Decimal(str(amount).replace(",", "").strip())
    except InvalidOperation:
        raise MoneyError(f"{shown} is not an amount") from None
    if not value.is_finite():
        raise MoneyError(f"{shown} is not an amount")
    exponent = minor_exponent(currency)
    # Bounded before scaling or int(): 1e999999999 would overflow, or take all memory.
    if value.adjusted() > 20 or abs(value.scaleb(exponent)) > MAX_MINOR:
        raise MoneyError(f"{shown} is out of range: amounts go up to "
                         f"{major(MAX_MINOR, currency)} {currency}")
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{shown} has more decimals than {currency} allows")
    return int(scaled)


def major(amount_minor: int, currency: str, grouping: str = ",") -> str:
    """``123450`` USD → ``"1,234.50"`` (``grouping=""``: ``"1234.50"``)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"amounts are integer minor units, got {amount_minor!r}")
    exponent = minor_exponent(currency)
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    text = f"{whole:{grouping}}" + (f".{fraction:0{exponent}d}" if exponent else "")
    return f"-{text}" if amount_minor < 0 else text


def format_money(amount_minor: int, currency: str) -> str:
    """``format_money(123450, "USD") == "USD 1,234.50"``; negatives read ``"USD -5.00"``."""
    return f"{currency} {major(amount_minor, currency)}"
