from __future__ import annotations

import pytest

from relaygate.accounting import FxTable, UnknownCurrencyError


def test_converts_both_ways() -> None:
    fx = FxTable({"USD": 1, "CNY": 7.3})
    assert fx.from_usd(10.0, "CNY") == pytest.approx(73.0)
    assert fx.to_usd(73.0, "cny") == pytest.approx(10.0)
    assert fx.from_usd(2.5, "USD") == 2.5
    assert fx.currencies == ["CNY", "USD"]


def test_default_currency_is_used_when_none_is_asked() -> None:
    fx = FxTable({"USD": 1, "CNY": 7.3}, default="CNY")
    assert fx.check(None) == "CNY"
    assert fx.check(" usd ") == "USD"


def test_unknown_currency_names_the_field_and_the_known_ones() -> None:
    fx = FxTable({"USD": 1, "CNY": 7.3})
    with pytest.raises(UnknownCurrencyError, match=r"currency: unknown currency 'EUR'.*CNY, USD"):
        fx.from_usd(1.0, "EUR")
    with pytest.raises(ValueError, match="currency"):
        FxTable({"USD": 1}, default="JPY")
