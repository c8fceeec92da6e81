"""Model prices and the cost of one request's usage.

Cost is computed from ``core.Usage``, whose ``input_tokens`` already exclude cache reads and writes
(the providers normalize OpenAI's ``prompt_tokens``, which include ``cached_tokens``). Each kind of
token has its own price, so cache reads are never charged at the full input rate and cache writes
are never free: a model priced without explicit cache prices pays 0.1x input for reads, 1.25x
input for writes (Anthropic's 5-minute cache write rate) and 2x input for the part of the writes
that went to Anthropic's 1-hour cache (``Usage.cache_write_1h_tokens``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from relaygate.accounting.default_prices import default_prices
from relaygate.core.types import Usage
from relaygate.settings.accounting import AccountingSettings, ModelPriceSettings

PER_TOKENS = 1_000_000
CACHE_READ_RATIO = 0.1
CACHE_WRITE_RATIO = 1.25
CACHE_WRITE_1H_RATIO = 2.0
_BOUNDARIES = frozenset("-@:.#")
# The gateway's own deployment ids are ``<model>#<index>``.
_DEPLOYMENT_SUFFIX = re.compile(r"#\d+$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens of each kind; ``cache_write`` is the 5-minute cache write rate."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    cache_write_1h: float

    @classmethod
    def of(
        cls,
        input: float,
        output: float,
        cache_read: float | None = None,
        cache_write: float | None = None,
        cache_write_1h: float | None = None,
    ) -> Price:
        """A price with the documented defaults for unset cache prices."""
        read = input * CACHE_READ_RATIO if cache_read is None else cache_read
        write = input * CACHE_WRITE_RATIO if cache_write is None else cache_write
        write_1h = input * CACHE_WRITE_1H_RATIO if cache_write_1h is None else cache_write_1h
        return cls(float(input), float(output), float(read), float(write), float(write_1h))

    @classmethod
    def from_settings(cls, settings: ModelPriceSettings) -> Price:
        return cls.of(
            settings.input,
            settings.output,
            settings.cache_read,
            settings.cache_write,
            settings.cache_write_1h,
        )

    def cost(self, usage: Usage) -> float:
        """USD for ``usage`` (``input_tokens`` excludes cache reads and writes)."""
        one_hour = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * self.cache_read
            + (usage.cache_write_tokens - one_hour) * self.cache_write
            + one_hour * self.cache_write_1h
        ) / PER_TOKENS

    def estimate(self, input_tokens: int, output_tokens: int) -> float:
        """An upper-leaning estimate: prompt tokens at the dearer of input and cache write."""
        prompt_rate = max(self.input, self.cache_write)
        return (input_tokens * prompt_rate + output_tokens * self.output) / PER_TOKENS


class PriceBook:
    """Model name -> price.

    A name is priced by the listed name equal to it (ignoring case, a ``provider/`` prefix and a
    ``#<index>`` deployment suffix), else by the longest listed name it starts with at a
    ``-``/``@``/``:``/``.``/``#`` boundary: dated snapshots such as ``gpt-4o-2024-08-06`` find
    ``gpt-4o``, and ``gpt-4o-mini-2024-07-18`` finds the longer ``gpt-4o-mini``.
    """

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._exact = {name.lower(): price for name, price in prices.items()}
        self._by_length = sorted(self._exact, key=len, reverse=True)

    @classmethod
    def from_settings(cls, settings: AccountingSettings) -> PriceBook:
        """The shipped defaults (unless turned off) overridden by ``settings.pricing``."""
        prices: dict[str, Price] = {}
        if settings.default_pricing:
            prices = {name: Price.of(*row) for name, row in default_prices().items()}
        for name, configured in settings.pricing.items():
            prices[name] = Price.from_settings(configured)
        return cls(prices)

    def __len__(self) -> int:
        return len(self._exact)

    def items(self) -> list[tuple[str, Price]]:
        """Every listed price, by name."""
        return sorted(self._exact.items())

    def lookup(self, model: str) -> Price | None:
        """The price for ``model``, or None when it is not listed."""
        return self.first((model,))

    def first(self, names: Iterable[str]) -> Price | None:
        """The price of the first name listed exactly; failing that, of the longest listed name
        any of ``names`` starts with, so a prefix match never beats a more specific one."""
        longest: str | None = None
        for name in names:
            match = self._match(name)
            if match is None:
                continue
            listed, exact = match
            if exact:
                return self._exact[listed]
            if longest is None or len(listed) > len(longest):
                longest = listed
        return None if longest is None else self._exact[longest]

    def _match(self, model: str) -> tuple[str, bool] | None:
        """The listed name that prices ``model``, and whether it matched exactly."""
        name = model.strip().lower()
        if name in self._exact:
            return name, True
        name = _DEPLOYMENT_SUFFIX.sub("", name).rsplit("/", 1)[-1]
        if name in self._exact:
            return name, True
        for listed in self._by_length:
            if name.startswith(listed) and name[len(listed) :][:1] in _BOUNDARIES:
                return listed, False
        return None
