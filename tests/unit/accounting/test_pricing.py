"""Prices, cost from neutral usage, and usage normalized across the two wire dialects."""

from __future__ import annotations

import pytest

from relaygate.accounting import Price, PriceBook
from relaygate.accounting.default_prices import default_prices
from relaygate.core.types import Usage
from relaygate.providers.anthropic.response import parse_usage as anthropic_usage
from relaygate.providers.openai.response import parse_usage as openai_usage
from relaygate.settings.accounting import AccountingSettings


def book(**config: object) -> PriceBook:
    return PriceBook.from_settings(AccountingSettings.model_validate(config))


def test_cost_prices_each_kind_of_token_separately() -> None:
    price = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75, cache_write_1h=6.0)
    usage = Usage(
        input_tokens=1_000, output_tokens=2_000, cache_read_tokens=10_000, cache_write_tokens=4_000
    )
    expected = (1_000 * 3.0 + 2_000 * 15.0 + 10_000 * 0.3 + 4_000 * 3.75) / 1_000_000
    assert price.cost(usage) == pytest.approx(expected)


def test_unset_cache_prices_default_to_anthropic_ratios() -> None:
    price = Price.of(2.0, 8.0)
    assert price.cache_read == pytest.approx(0.2)
    assert price.cache_write == pytest.approx(2.5)
    explicit = Price.of(2.0, 8.0, cache_read=0.5, cache_write=0.0)
    assert (explicit.cache_read, explicit.cache_write) == (0.5, 0.0)


def test_cache_reads_are_not_charged_at_the_input_rate() -> None:
    claude = book().lookup("claude-sonnet-4-5")
    assert claude is not None
    reads = claude.cost(Usage(cache_read_tokens=1_000_000))
    fresh = claude.cost(Usage(input_tokens=1_000_000))
    assert reads == pytest.approx(0.30) and fresh == pytest.approx(3.00)
    writes = claude.cost(Usage(cache_write_tokens=1_000_000))
    assert writes == pytest.approx(3.75)


@pytest.mark.parametrize("name", sorted(default_prices()))
def test_every_shipped_model_costs_something_for_every_kind_of_token(name: str) -> None:
    price = book().lookup(name)
    assert price is not None
    for usage in (
        Usage(input_tokens=1000),
        Usage(output_tokens=1000),
        Usage(cache_read_tokens=1000),
        Usage(cache_write_tokens=1000),
    ):
        assert price.cost(usage) > 0, (name, usage)


@pytest.mark.parametrize(
    ("asked", "listed"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("Claude-Sonnet-4-5", "claude-sonnet-4-5"),
        ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-nano", "gpt-4.1-nano"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("deepseek-chat", "deepseek-chat"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("mock-gpt", "mock"),
        ("o1-mini-2024-09-12", "o1-mini"),
    ],
)
def test_lookup_exact_then_longest_prefix(asked: str, listed: str) -> None:
    prices = book()
    assert prices.lookup(asked) == prices.lookup(listed)
    assert prices.lookup(asked) is not None


def test_o1_mini_is_not_priced_as_o1() -> None:
    prices = book()
    assert prices.lookup("o1-mini") != prices.lookup("o1")


@pytest.mark.parametrize("asked", ["mockingbird", "gpt-4oo", "llama-3", "", "claude"])
def test_unknown_models_have_no_price(asked: str) -> None:
    assert book().lookup(asked) is None


def test_config_overrides_and_adds_prices() -> None:
    prices = book(
        pricing={
            "gpt-4o": {"input": 1, "output": 2},
            "in-house-7b": {"input": 0.1, "output": 0.2, "cache_read": 0, "cache_write": 0.1},
        }
    )
    assert prices.lookup("gpt-4o") == Price.of(1.0, 2.0)
    assert prices.lookup("in-house-7b") == Price(0.1, 0.2, 0.0, 0.1, 0.2)
    assert prices.lookup("claude-sonnet-4-5") is not None


def test_defaults_can_be_switched_off() -> None:
    prices = book(default_pricing=False, pricing={"only": {"input": 1, "output": 1}})
    assert len(prices) == 1
    assert prices.lookup("gpt-4o") is None


def test_first_finds_the_first_exact_name_else_the_longest_prefix() -> None:
    prices = book()
    assert prices.first(["my-deployment", "mock-claude", "gpt-4o"]) == prices.lookup("gpt-4o")
    assert prices.first(["my-deployment", "mock-claude", "in-house"]) == prices.lookup("mock")
    assert prices.first(["gpt-4o", "mock"]) == prices.lookup("gpt-4o")
    assert prices.first(["nope", "none"]) is None


def test_estimate_uses_the_dearer_prompt_rate_and_all_of_max_tokens() -> None:
    price = Price.of(3.0, 15.0, cache_read=0.3, cache_write=3.75)
    assert price.estimate(1000, 500) == pytest.approx((1000 * 3.75 + 500 * 15.0) / 1e6)


# The same conversation reported by each wire format must normalize to the same usage and cost:
# OpenAI's prompt_tokens include cached_tokens, Anthropic's input_tokens exclude cache reads.
def test_usage_from_either_dialect_costs_the_same() -> None:
    from_openai = openai_usage(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1000},
        }
    )
    from_anthropic = anthropic_usage(
        {"input_tokens": 200, "output_tokens": 300, "cache_read_input_tokens": 1000}
    )
    assert from_openai == Usage(input_tokens=200, output_tokens=300, cache_read_tokens=1000)
    assert from_anthropic == from_openai
    price = book().lookup("gpt-4o")
    assert price is not None
    expected = (200 * 2.5 + 300 * 10.0 + 1000 * 1.25) / 1e6
    assert price.cost(from_openai) == pytest.approx(expected)


def test_anthropic_cache_writes_are_billed_separately_from_input() -> None:
    usage = anthropic_usage(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 2000,
            "cache_read_input_tokens": 3000,
        }
    )
    assert usage.prompt_total == 5010
    price = book().lookup("claude-sonnet-4-5")
    assert price is not None
    assert price.cost(usage) == pytest.approx((10 * 3 + 5 * 15 + 2000 * 3.75 + 3000 * 0.3) / 1e6)


def test_deepseek_cache_hits_are_cache_reads() -> None:
    usage = openai_usage(
        {"prompt_tokens": 100, "completion_tokens": 10, "prompt_cache_hit_tokens": 60}
    )
    assert (usage.input_tokens, usage.cache_read_tokens) == (40, 60)


SHIPPED = sorted(default_prices())


@pytest.mark.parametrize("name", SHIPPED)
def test_no_shipped_name_shadows_another(name: str) -> None:
    # Every shipped name, its deployment id, a dated snapshot of it and the deployment-id lookup
    # the gateway does (deployment id, model name, upstream model) all find that name's own price.
    prices = book()
    own = Price.of(*default_prices()[name])
    assert prices.lookup(name) == own
    assert prices.lookup(f"{name}#0") == own
    assert prices.lookup(f"{name}-2025-01-01") == own
    assert prices.lookup(f"{name}-2025-01-01#3") == own
    assert prices.first((f"{name}#0", name, name)) == own
    assert prices.first((f"{name}#12", name, f"{name}-20250101")) == own


def test_gpt_4o_mini_deployment_is_not_priced_as_gpt_4o() -> None:
    prices = PriceBook.from_settings(AccountingSettings())
    assert prices.first(("gpt-4o-mini#0", "gpt-4o-mini")) == Price.of(0.15, 0.6, 0.075, 0.15)


def test_an_exact_name_beats_a_prefix_match_of_an_earlier_candidate() -> None:
    # An alias "gpt-4o-cheap" served by upstream "gpt-4o-mini": the alias only prefix-matches
    # gpt-4o, the upstream model is priced exactly.
    prices = book()
    assert prices.first(("gpt-4o-cheap#0", "gpt-4o-cheap", "gpt-4o-mini")) == prices.lookup(
        "gpt-4o-mini"
    )


def test_the_longest_prefix_across_candidates_wins() -> None:
    prices = book()
    asked = ("team-a#0", "gpt-4o-custom", "gpt-4o-mini-2024-07-18")
    assert prices.first(asked) == prices.lookup("gpt-4o-mini")


def test_a_configured_deployment_name_is_priced_first() -> None:
    prices = book(pricing={"eu-primary": {"input": 9, "output": 9}})
    assert prices.first(("eu-primary", "gpt-4o-mini", "gpt-4o-mini")) == Price.of(9.0, 9.0)
