"""What a request is billed for, in particular a stream cut short."""

from __future__ import annotations

from relaygate.accounting import billable_usage
from relaygate.core.types import ChatRequest, Message, TextBlock, Usage


def request(text: str = "hello there " * 50) -> ChatRequest:
    return ChatRequest(
        dialect="openai",
        model="m",
        messages=(Message("user", (TextBlock(text),)),),
        raw={"messages": [{"role": "user", "content": text}]},
    )


def test_complete_requests_bill_what_the_upstream_reported() -> None:
    usage = Usage(input_tokens=10, output_tokens=5)
    assert billable_usage(usage, "ok", 10_000, request()) is usage
    assert billable_usage(None, "error", 0, request()) is None


def test_a_cut_short_stream_without_usage_is_estimated_from_what_was_delivered() -> None:
    billed = billable_usage(None, "partial", 401, request())
    assert billed is not None
    assert billed.output_tokens == 101  # 401 characters at four a token, rounded up
    assert billed.input_tokens > 100


def test_reported_counts_are_kept_and_only_missing_ones_estimated() -> None:
    start = Usage(input_tokens=42, output_tokens=1, cache_read_tokens=7)
    billed = billable_usage(start, "client_closed", 80, request())
    assert billed == Usage(input_tokens=42, output_tokens=20, cache_read_tokens=7)


def test_a_fuller_report_than_the_estimate_wins() -> None:
    usage = Usage(input_tokens=42, output_tokens=500)
    assert billable_usage(usage, "partial", 80, request()) is usage


def test_a_cut_short_stream_that_delivered_nothing_bills_the_prompt() -> None:
    billed = billable_usage(None, "partial", 0, request())
    assert billed is not None and billed.output_tokens == 0 and billed.input_tokens > 0
