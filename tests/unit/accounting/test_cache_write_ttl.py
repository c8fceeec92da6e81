"""Anthropic cache writes by TTL: 5-minute writes cost 1.25x input, 1-hour writes 2x input.

The split (``usage.cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``) is
read from whole and streamed answers, carried by ``Usage.cache_write_1h_tokens`` (a part of
``cache_write_tokens``) to the price and the ledger row.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from tests.unit.accounting.test_ledger_writer import FakeLedgerStore
from tests.unit.accounting.test_service import catalog, finished

from relaygate.accounting import Accounting, LedgerWriter, LocalBudgets, Price, PriceBook, SpillFile
from relaygate.core.sse import SSEFrame
from relaygate.core.types import Usage
from relaygate.providers.anthropic import AnthropicStreamParser
from relaygate.providers.anthropic.response import parse_response, parse_usage
from relaygate.settings.accounting import AccountingSettings, BudgetSettings, LedgerSettings

SPLIT_USAGE = {
    "input_tokens": 10,
    "output_tokens": 5,
    "cache_creation_input_tokens": 3000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    "cache_read_input_tokens": 400,
}
SPLIT = Usage(
    input_tokens=10,
    output_tokens=5,
    cache_read_tokens=400,
    cache_write_tokens=3000,
    cache_write_1h_tokens=2000,
)


def test_the_ttl_breakdown_is_parsed_from_a_whole_answer() -> None:
    assert parse_usage(SPLIT_USAGE) == SPLIT
    assert SPLIT.prompt_total == 3410
    answer = {"id": "msg_1", "model": "m", "content": [], "usage": SPLIT_USAGE}
    assert parse_response(orjson.dumps(answer)).usage == SPLIT


def test_without_the_breakdown_every_cache_write_is_a_five_minute_one() -> None:
    usage = parse_usage({"input_tokens": 1, "cache_creation_input_tokens": 700})
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (700, 0)


def test_a_breakdown_without_the_total_still_counts_every_write() -> None:
    usage = parse_usage({"cache_creation": {"ephemeral_1h_input_tokens": 50}})
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (50, 50)


@pytest.mark.parametrize("bad", [[], {"ephemeral_1h_input_tokens": "9"}])
def test_a_malformed_breakdown_is_malformed(bad: object) -> None:
    from relaygate.providers.anthropic.response import MalformedError

    with pytest.raises(MalformedError):
        parse_usage({"cache_creation": bad})


def test_the_ttl_breakdown_is_parsed_from_a_stream() -> None:
    parser = AnthropicStreamParser()
    start_usage = (
        '{"input_tokens":10,"output_tokens":1,"cache_creation_input_tokens":3000,'
        '"cache_read_input_tokens":400,"cache_creation":'
        '{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000}}'
    )
    frames = [
        SSEFrame(
            "message_start",
            '{"type":"message_start","message":{"id":"msg_1","model":"m","usage":'
            + start_usage
            + "}}",
        ),
        SSEFrame(
            None,
            '{"type":"message_delta","delta":{"stop_reason":"end_turn"},'
            '"usage":{"output_tokens":5}}',
        ),
        SSEFrame(None, '{"type":"message_stop"}'),
    ]
    for frame in frames:
        parser.feed(frame)
    assert parser.usage == SPLIT


def test_a_message_delta_may_report_the_breakdown() -> None:
    parser = AnthropicStreamParser()
    frames = [
        SSEFrame(
            "message_start",
            '{"type":"message_start","message":{"id":"msg_1","model":"m",'
            '"usage":{"input_tokens":10,"output_tokens":1}}}',
        ),
        SSEFrame(
            None,
            '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":'
            '{"output_tokens":5,"cache_read_input_tokens":400,"cache_creation_input_tokens":3000,'
            '"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000}}}',
        ),
    ]
    for frame in frames:
        parser.feed(frame)
    assert parser.usage == SPLIT


def test_one_hour_writes_cost_twice_the_input_price() -> None:
    price = PriceBook.from_settings(AccountingSettings()).lookup("claude-sonnet-4-5")
    assert price is not None and price.cache_write_1h == pytest.approx(6.0)
    expected = (10 * 3.0 + 5 * 15.0 + 400 * 0.3 + 1000 * 3.75 + 2000 * 6.0) / 1e6
    assert price.cost(SPLIT) == pytest.approx(expected)
    five_minute_only = Usage(input_tokens=10, output_tokens=5, cache_write_tokens=3000)
    assert price.cost(five_minute_only) == pytest.approx((10 * 3 + 5 * 15 + 3000 * 3.75) / 1e6)


def test_the_one_hour_write_price_can_be_configured() -> None:
    configured = {"pricing": {"house": {"input": 1, "output": 1, "cache_write_1h": 1.5}}}
    prices = PriceBook.from_settings(AccountingSettings.model_validate(configured))
    assert prices.lookup("house") == Price.of(1.0, 1.0, cache_write_1h=1.5)
    assert Price.of(1.0, 1.0).cache_write_1h == 2.0


async def test_the_ledger_row_carries_the_one_hour_writes(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    writer = LedgerWriter(store, SpillFile(tmp_path, "spill"), LedgerSettings())  # type: ignore[arg-type]
    budgets = LocalBudgets(store, BudgetSettings())  # type: ignore[arg-type]
    routes = catalog()
    acc = Accounting(AccountingSettings(), store, budgets, writer, routes)  # type: ignore[arg-type]
    ctx = finished(usage=SPLIT)
    acc.finish(ctx)
    await writer.flush()
    await routes.close()
    [row] = store.rows.values()
    assert (row.cache_write_tokens, row.cache_write_1h_tokens) == (3000, 2000)
    mock = Price.of(1.0, 4.0, 0.1, 1.25)  # the shipped mock price: 1h writes at 2.0
    assert row.cost_usd == pytest.approx(mock.cost(SPLIT))
    assert row.cost_usd == pytest.approx((10 + 5 * 4 + 400 * 0.1 + 1000 * 1.25 + 2000 * 2) / 1e6)
