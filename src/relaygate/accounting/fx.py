"""The FX table from config: every amount is kept in USD and converted only for display."""

from __future__ import annotations

from collections.abc import Mapping

from relaygate.settings.accounting import AccountingSettings

BASE_CURRENCY = "USD"


class UnknownCurrencyError(ValueError):
    """A currency with no rate in ``accounting.fx``; the message lists the known ones."""

    def __init__(self, currency: str, known: list[str]) -> None:
        super().__init__(
            f"currency: unknown currency '{currency[:16]}'; configured: {', '.join(known)}"
        )
        self.currency = currency


class FxTable:
    """Units of each currency per 1 USD (``{"USD": 1, "CNY": 7.3}``)."""

    def __init__(self, rates: Mapping[str, float], default: str = BASE_CURRENCY) -> None:
        self._rates = {code.upper(): float(rate) for code, rate in rates.items()}
        self._rates.setdefault(BASE_CURRENCY, 1.0)
        self.default = self.check(default)

    @classmethod
    def from_settings(cls, settings: AccountingSettings) -> FxTable:
        return cls(settings.fx, settings.currency)

    @property
    def currencies(self) -> list[str]:
        return sorted(self._rates)

    def check(self, currency: str | None) -> str:
        """``currency`` upper-cased (the default when None); UnknownCurrencyError if not listed."""
        if currency is None:
            return self.default
        code = currency.strip().upper()
        if code not in self._rates:
            raise UnknownCurrencyError(currency, self.currencies)
        return code

    def rate(self, currency: str) -> float:
        return self._rates[self.check(currency)]

    def from_usd(self, amount_usd: float, currency: str) -> float:
        """``amount_usd`` in ``currency``."""
        return amount_usd * self.rate(currency)

    def to_usd(self, amount: float, currency: str) -> float:
        """``amount`` of ``currency`` in USD (for top-ups given in another currency)."""
        return amount / self.rate(currency)
