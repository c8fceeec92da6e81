"""Parsing Anthropic answers and classifying Anthropic error answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.core.errors import UpstreamError
from relaygate.core.types import (
    FinishReason,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.providers.anthropic import AnthropicProvider
from relaygate.providers.anthropic.errors import CREDENTIALS_MESSAGE

FIXTURES = Path(__file__).parents[3] / "fixtures" / "anthropic"
provider = AnthropicProvider()


def test_parse_recorded_message() -> None:
    resp = provider.parse_response((FIXTURES / "message_response.json").read_bytes())
    assert resp.id == "msg_01K7yGJn3oZBjbHg5S5qf2Qd"
    assert resp.model == "claude-opus-5-5"
    thinking, redacted, text, tool = resp.content  # server_tool_use is skipped
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.signature is not None
    assert thinking.signature.endswith("ZyIw==")
    assert redacted == RedactedThinkingBlock(
        "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj2pabxdQrmLd6Dc9VRkKjHOb"
    )
    assert text == TextBlock("I'll run that.")
    assert tool == ToolUseBlock(
        "toolu_01A09q90qw90lq917835lq9", "Bash", {"command": "echo hi", "description": "Print hi"}
    )
    assert resp.finish_reason is FinishReason.TOOL_USE
    assert resp.usage == Usage(
        input_tokens=12, output_tokens=89, cache_read_tokens=31200, cache_write_tokens=6850
    )
    assert resp.stop_sequence is None


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("end_turn", FinishReason.END_TURN),
        ("max_tokens", FinishReason.MAX_TOKENS),
        ("stop_sequence", FinishReason.STOP_SEQUENCE),
        ("tool_use", FinishReason.TOOL_USE),
        ("refusal", FinishReason.CONTENT_FILTER),
        ("pause_turn", FinishReason.PAUSE_TURN),
        ("model_context_window_exceeded", FinishReason.MAX_TOKENS),
        ("something_new", FinishReason.END_TURN),
    ],
)
def test_stop_reasons(wire: str, reason: FinishReason) -> None:
    body = (
        b'{"id":"msg_1","model":"m","content":[],"stop_reason":"' + wire.encode() + b'",'
        b'"stop_sequence":"END","usage":{"input_tokens":1,"output_tokens":2,'
        b'"cache_read_input_tokens":null,"output_tokens_details":{"thinking_tokens":1}}}'
    )
    resp = provider.parse_response(body)
    assert resp.finish_reason is reason
    assert resp.stop_sequence == "END"
    assert resp.usage == Usage(input_tokens=1, output_tokens=2, reasoning_tokens=1)


MALFORMED_ANSWERS = [
    b"not json",
    b"[]",
    b'{"id":"msg_1","model":"m"}',
    b'{"id":"msg_1","model":"m","content":"hi"}',
    b'{"id":1,"model":"m","content":[]}',
    b'{"id":"msg_1","model":"m","content":[{"type":"text"}]}',
    b'{"id":"msg_1","model":"m","content":[{"type":"tool_use","id":"t","name":"n","input":"x"}]}',
    b'{"id":"msg_1","model":"m","content":[],"usage":{"input_tokens":"3"}}',
    b'{"id":"msg_1","model":"m","content":[],"usage":[]}',
    b'{"type":"error","error":{"type":"api_error","message":"x"}}',
]


@pytest.mark.parametrize("body", MALFORMED_ANSWERS)
def test_malformed_answers_are_retryable_502(body: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        provider.parse_response(body)
    assert caught.value.status == 502
    assert caught.value.retryable


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_classify_429_with_retry_after() -> None:
    err = provider.classify_error(429, {"retry-after": "7"}, read("error_rate_limit.json"))
    assert (err.status, err.kind, err.retryable, err.retry_after) == (429, "rate_limited", True, 7)
    assert err.upstream_status == 429
    assert "per-minute rate limit" in err.message


def test_classify_529_overloaded() -> None:
    err = provider.classify_error(529, {}, read("error_overloaded.json"))
    assert (err.status, err.kind, err.retryable) == (503, "overloaded", True)
    assert err.upstream_status == 529


def test_classify_400_keeps_upstream_message() -> None:
    err = provider.classify_error(400, {}, read("error_invalid_request.json"))
    assert (err.status, err.kind, err.retryable) == (400, "invalid_request", False)
    assert err.message.startswith("messages.1.content.0.thinking.signature")


@pytest.mark.parametrize("status", [401, 403])
def test_classify_rejected_credentials(status: int) -> None:
    body = b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
    err = provider.classify_error(status, {"x-api-key": "sk-ant-leak"}, body)
    assert (err.status, err.retryable, err.message) == (502, True, CREDENTIALS_MESSAGE)
    assert err.upstream_status == status


@pytest.mark.parametrize(
    ("status", "caller_status", "retryable"),
    [
        (500, 502, True),
        (502, 502, True),
        (503, 503, True),
        (504, 502, True),
        (404, 502, True),
        (413, 413, False),
        (418, 502, False),
        (520, 502, True),
    ],
)
def test_classify_other_statuses(status: int, caller_status: int, retryable: bool) -> None:
    err = provider.classify_error(status, {"Retry-After": "soon"}, b"<html>gateway</html>")
    assert (err.status, err.retryable, err.upstream_status) == (caller_status, retryable, status)
    assert err.retry_after is None
    assert "<html>" not in err.message


def test_classify_overloaded_body_under_other_status() -> None:
    err = provider.classify_error(503, {"retry-after": "2"}, read("error_overloaded.json"))
    assert (err.status, err.kind, err.retry_after) == (503, "overloaded", 2)


def test_long_upstream_messages_are_truncated() -> None:
    body = (
        b'{"type":"error","error":{"type":"invalid_request_error","message":"'
        + b"x" * 5000
        + b'"}}'
    )
    assert len(provider.classify_error(400, {}, body).message) <= 500


def test_absurd_token_counts_are_clamped() -> None:
    from relaygate.core.types import TOKEN_COUNT_LIMIT
    from relaygate.providers.anthropic.response import parse_usage

    usage = parse_usage({"input_tokens": 10**30, "output_tokens": -5})
    assert usage.input_tokens == TOKEN_COUNT_LIMIT
    assert usage.output_tokens == 0
