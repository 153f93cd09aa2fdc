"""Money in minor units: each currency's decimals, parsing and formatting."""

from __future__ import annotations

import pytest

from cpq.money import MoneyError, format_money, minor_exponent, to_minor


@pytest.mark.parametrize(("amount", "currency", "expected"), [
    (123450, "USD", "USD 1,234.50"),
    (5, "USD", "USD 0.05"),
    (0, "USD", "USD 0.00"),
    (123456789, "EUR", "EUR 1,234,567.89"),
    (-500, "USD", "USD -5.00"),
    (-123450, "USD", "USD -1,234.50"),
    (1234567, "JPY", "JPY 1,234,567"),
    (-1000, "KRW", "KRW -1,000"),
    (1234500, "KWD", "KWD 1,234.500"),
    (7, "BHD", "BHD 0.007"),
    (-1, "KWD", "KWD -0.001"),
])
def test_format_money(amount: int, currency: str, expected: str) -> None:
    assert format_money(amount, currency) == expected


def test_minor_exponent_knows_the_odd_currencies() -> None:
    assert [minor_exponent(c) for c in ("USD", "EUR", "JPY", "KRW", "KWD", "BHD", "JOD",
                                        "OMR", "TND", "CLF")] == [2, 2, 0, 0, 3, 3, 3, 3, 3, 4]
    for bad in ("usd", "US", "EURO", ""):
        with pytest.raises(ValueError, match="ISO 4217"):
            minor_exponent(bad)


def test_money_refuses_floats() -> None:
    with pytest.raises(TypeError, match="integer minor units"):
        format_money(12.5, "USD")  # type: ignore[arg-type]



@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("1,234.5", "USD", 123_450), ("1200", "EUR", 120_000), ("1234", "JPY", 1_234),
    ("1.005", "KWD", 1_005), ("0", "USD", 0)])
def test_to_minor(text: str, currency: str, minor: int) -> None:
    assert to_minor(text, currency) == minor


@pytest.mark.parametrize(("text", "currency", "message"), [
    ("12.345", "USD", "more decimals than USD"), ("1.5", "JPY", "more decimals than JPY"),
    ("abc", "USD", "not an amount"), ("NaN", "USD", "not an amount")])
def test_to_minor_refuses(text: str, currency: str, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        to_minor(text, currency)
