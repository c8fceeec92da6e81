"""Shipped prices, USD per million tokens: (input, output, cache read, cache write).

Taken from the providers' public price pages (standard tier, short-context rates). Every entry can
be replaced in config (``accounting.pricing``); ``accounting.default_pricing: false`` drops them
all. OpenAI, Gemini and DeepSeek do not charge for writing their prompt cache, so their cache-write
price is the plain input price (those tokens are reported as ordinary input anyway). Names match
exactly or as the longest prefix at a ``-``/``@``/``:``/``.``/``#`` boundary, so
``claude-sonnet-4-5-20250929`` finds ``claude-sonnet-4-5`` and ``gpt-4o-mini#0`` finds
``gpt-4o-mini``, never ``gpt-4o`` (see ``PriceBook``).
"""

from __future__ import annotations

from typing import Final

PriceRow = tuple[float, float, float, float]

ANTHROPIC: Final[dict[str, PriceRow]] = {
    "claude-opus-4-5": (5.0, 25.0, 0.5, 6.25),
    "claude-opus-4-1": (15.0, 75.0, 1.5, 18.75),
    "claude-opus-4": (15.0, 75.0, 1.5, 18.75),
    "claude-sonnet-4-5": (3.0, 15.0, 0.3, 3.75),
    "claude-sonnet-4": (3.0, 15.0, 0.3, 3.75),
    "claude-haiku-4-5": (1.0, 5.0, 0.1, 1.25),
    "claude-3-7-sonnet": (3.0, 15.0, 0.3, 3.75),
    "claude-3-5-sonnet": (3.0, 15.0, 0.3, 3.75),
    "claude-3-5-haiku": (0.8, 4.0, 0.08, 1.0),
    "claude-3-opus": (15.0, 75.0, 1.5, 18.75),
    "claude-3-haiku": (0.25, 1.25, 0.03, 0.3),
}

OPENAI: Final[dict[str, PriceRow]] = {
    "gpt-5": (1.25, 10.0, 0.125, 1.25),
    "gpt-5-mini": (0.25, 2.0, 0.025, 0.25),
    "gpt-5-nano": (0.05, 0.4, 0.005, 0.05),
    "gpt-4.1": (2.0, 8.0, 0.5, 2.0),
    "gpt-4.1-mini": (0.4, 1.6, 0.1, 0.4),
    "gpt-4.1-nano": (0.1, 0.4, 0.025, 0.1),
    "gpt-4o": (2.5, 10.0, 1.25, 2.5),
    "gpt-4o-mini": (0.15, 0.6, 0.075, 0.15),
    "o1": (15.0, 60.0, 7.5, 15.0),
    "o1-mini": (1.1, 4.4, 0.55, 1.1),
    "o3": (2.0, 8.0, 0.5, 2.0),
    "o3-mini": (1.1, 4.4, 0.55, 1.1),
    "o4-mini": (1.1, 4.4, 0.275, 1.1),
}

GEMINI: Final[dict[str, PriceRow]] = {
    "gemini-2.5-pro": (1.25, 10.0, 0.125, 1.25),
    "gemini-2.5-flash": (0.3, 2.5, 0.03, 0.3),
    "gemini-2.5-flash-lite": (0.1, 0.4, 0.01, 0.1),
    "gemini-2.0-flash": (0.1, 0.4, 0.025, 0.1),
    "gemini-2.0-flash-lite": (0.075, 0.3, 0.075, 0.075),
}

DEEPSEEK: Final[dict[str, PriceRow]] = {
    "deepseek-chat": (0.28, 0.42, 0.028, 0.28),
    "deepseek-reasoner": (0.28, 0.42, 0.028, 0.28),
}

# The built-in simulated upstream, priced like a small model so the demo shows real-looking cost.
MOCK: Final[dict[str, PriceRow]] = {
    "mock": (1.0, 4.0, 0.1, 1.25),
}


def default_prices() -> dict[str, PriceRow]:
    """A fresh copy of every shipped price."""
    return {**ANTHROPIC, **OPENAI, **GEMINI, **DEEPSEEK, **MOCK}
