"""Accounting settings: prices per model, the FX table, the usage ledger and budget enforcement.

```yaml
accounting:
  currency: CNY                 # default currency of reports
  fx: {USD: 1, CNY: 7.3}        # units of each currency per 1 USD
  pricing:                      # USD per million tokens; merged over the shipped defaults
    my-model: {input: 0.5, output: 1.5, cache_read: 0.05, cache_write: 0.625, cache_write_1h: 1.0}
  ledger: {batch_size: 500, flush_interval_seconds: 0.5}
  budget: {mode: auto}
```
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


def _strict_number(value: object) -> object:
    # Strict: "1.5" (a string) or `true` is a typo, not a price.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return value


Number = Annotated[float, BeforeValidator(_strict_number)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelPriceSettings(_Frozen):
    """USD per million tokens. Unset cache prices default to 0.1x (read), 1.25x (write, 5-minute
    TTL) and 2x (write, 1-hour TTL) input."""

    input: Number = Field(ge=0, allow_inf_nan=False)
    output: Number = Field(ge=0, allow_inf_nan=False)
    cache_read: Number | None = Field(None, ge=0, allow_inf_nan=False)
    cache_write: Number | None = Field(None, ge=0, allow_inf_nan=False)
    cache_write_1h: Number | None = Field(None, ge=0, allow_inf_nan=False)


class LedgerSettings(_Frozen):
    """The usage ledger: a bounded queue written in batches by one background task."""

    enabled: bool = True
    queue_size: int = Field(100_000, gt=0)
    batch_size: int = Field(500, gt=0, le=10_000)
    flush_interval_seconds: float = Field(0.5, gt=0)
    retry_seconds: float = Field(1.0, gt=0)
    write_timeout_seconds: float = Field(15.0, gt=0)
    spill_file: str = Field("ledger-spill.jsonl", min_length=1)
    # Every spill file of the home together; past it rows wait in memory (queue_size), then drop.
    spill_max_bytes: int = Field(512 * 1024 * 1024, gt=0)
    # Rows the database rejects for their values (JSON lines), next to the spill files.
    dead_letter_file: str = Field("ledger-dead-letter.jsonl", min_length=1)


class BudgetSettings(_Frozen):
    """How budgets are enforced.

    ``local``: an in-process view (no database on the request path), persisted and re-read every
    ``sync_seconds``; exact for one process. ``shared``: one atomic UPDATE per request of a key
    that has a budget, exact across processes. ``auto``: shared on PostgreSQL, local on SQLite.
    """

    mode: Literal["auto", "local", "shared"] = "auto"
    sync_seconds: float = Field(2.0, gt=0)
    # A reservation older than this is taken as leaked by a crashed process and released.
    reservation_ttl_seconds: float = Field(900.0, gt=0)
    # When the shared store cannot be reached: admit (and settle later) or refuse.
    fail_open: bool = True


class AccountingSettings(_Frozen):
    currency: str = "USD"
    fx: dict[str, Number] = Field(default_factory=lambda: {"USD": 1.0, "CNY": 7.3})
    pricing: dict[str, ModelPriceSettings] = Field(default_factory=dict)
    default_pricing: bool = Field(True, description="ship prices for common models")
    ledger: LedgerSettings = LedgerSettings()
    budget: BudgetSettings = BudgetSettings()

    @field_validator("fx")
    @classmethod
    def _check_fx(cls, fx: dict[str, float]) -> dict[str, float]:
        for code, rate in fx.items():
            if not CURRENCY_CODE.match(code):
                raise ValueError(f"'{code}' is not a currency code (three capital letters)")
            if not math.isfinite(rate) or rate <= 0:
                raise ValueError(f"{code}: the rate must be a number above 0, got {rate}")
        if fx.get("USD") != 1:
            raise ValueError("USD must be present with rate 1 (rates are units per 1 USD)")
        return fx

    @field_validator("currency")
    @classmethod
    def _check_currency(cls, currency: str) -> str:
        if not CURRENCY_CODE.match(currency):
            raise ValueError(f"'{currency}' is not a currency code (three capital letters)")
        return currency

    @field_validator("pricing")
    @classmethod
    def _check_names(cls, pricing: dict[str, ModelPriceSettings]) -> dict[str, ModelPriceSettings]:
        for name in pricing:
            if not name.strip():
                raise ValueError("model names in pricing must not be empty")
        return pricing

    @model_validator(mode="after")
    def _currency_has_rate(self) -> AccountingSettings:
        if self.currency not in self.fx:
            raise ValueError(
                f"currency: '{self.currency}' has no rate in fx ({', '.join(sorted(self.fx))})"
            )
        return self
