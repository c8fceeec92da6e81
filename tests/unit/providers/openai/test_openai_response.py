"""Parsing chat.completion bodies into ChatResponse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.core.errors import UpstreamError
from relaygate.core.types import FinishReason, TextBlock, ThinkingBlock, ToolUseBlock, Usage
from relaygate.providers.openai import OpenAIProvider

FIXTURES = Path(__file__).parents[3] / "fixtures" / "openai"


def parse(body: Any) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return OpenAIProvider().parse_response(raw)


def completion(message: dict[str, Any], finish: Any = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        **extra,
    }


def test_text_fixture() -> None:
    resp = parse((FIXTURES / "chat_completion.json").read_bytes())
    assert resp.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert resp.model == "gpt-4o-2024-08-06"
    assert resp.content == (TextBlock("Hello! How can I assist you today?"),)
    assert resp.finish_reason is FinishReason.END_TURN
    assert resp.usage == Usage(input_tokens=67, output_tokens=10, cache_read_tokens=1152)
    assert resp.usage.prompt_total == 1219


def test_tool_calls_fixture() -> None:
    resp = parse((FIXTURES / "chat_completion_tool_calls.json").read_bytes())
    assert resp.content == (
        ToolUseBlock("call_abc123", "get_current_weather", {"location": "Boston, MA"}),
        ToolUseBlock(
            "call_def456", "get_current_weather", {"location": "Paris", "unit": "celsius"}
        ),
    )
    assert resp.finish_reason is FinishReason.TOOL_USE
    assert resp.usage == Usage(input_tokens=82, output_tokens=17)


def test_reasoning_fixture() -> None:
    resp = parse((FIXTURES / "chat_completion_reasoning.json").read_bytes())
    assert resp.content == (
        ThinkingBlock("Compare the decimals: 0.11 < 0.80."),
        TextBlock("9.11 is smaller than 9.8."),
    )
    assert resp.usage.reasoning_tokens == 45


def test_reasoning_field_alias() -> None:
    resp = parse(completion({"role": "assistant", "content": "x", "reasoning": "r"}))
    assert resp.content == (ThinkingBlock("r"), TextBlock("x"))


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("stop", FinishReason.END_TURN),
        ("length", FinishReason.MAX_TOKENS),
        ("tool_calls", FinishReason.TOOL_USE),
        ("function_call", FinishReason.TOOL_USE),
        ("content_filter", FinishReason.CONTENT_FILTER),
        (None, FinishReason.END_TURN),
        ("weird", FinishReason.END_TURN),
    ],
)
def test_finish_reason_mapping(wire: Any, reason: FinishReason) -> None:
    assert parse(completion({"role": "assistant", "content": "x"}, wire)).finish_reason is reason


def test_stop_with_tool_calls_means_tool_use() -> None:
    message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    resp = parse(completion(message, "stop"))
    assert resp.finish_reason is FinishReason.TOOL_USE
    assert resp.content == (ToolUseBlock("t", "f", {}),)  # no empty text block


@pytest.mark.parametrize(
    ("arguments", "parsed"),
    [
        ("", {}),
        (None, {}),
        ("{bad", {"_raw": "{bad"}),
        ("[1]", {"_raw": "[1]"}),
        ('{"a": {"b": null}}', {"a": {"b": None}}),
    ],
)
def test_arguments(arguments: Any, parsed: dict[str, Any]) -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": arguments}}],
    }
    (block,) = parse(completion(message, "tool_calls")).content
    assert block == ToolUseBlock("call_0", "f", parsed)


def test_refusal_becomes_text() -> None:
    resp = parse(completion({"role": "assistant", "content": None, "refusal": "I can't."}))
    assert resp.content == (TextBlock("I can't."),)


def test_content_parts_array() -> None:
    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    assert parse(completion(message)).content == (TextBlock("ab"),)


def test_empty_content_without_tools_is_kept() -> None:
    assert parse(completion({"role": "assistant", "content": ""})).content == (TextBlock(""),)


def test_deepseek_cache_fields_and_missing_usage() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 5, "prompt_cache_hit_tokens": 64}
    assert parse(completion({"role": "assistant", "content": "x"}, usage=usage)).usage == Usage(
        input_tokens=36, output_tokens=5, cache_read_tokens=64
    )
    assert parse(completion({"role": "assistant", "content": "x"})).usage == Usage()


def test_usage_nulls_and_junk() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": None,
        "total_tokens": 10,
        "prompt_tokens_details": None,
        "completion_tokens_details": {"reasoning_tokens": "x"},
    }
    resp = parse(completion({"role": "assistant", "content": "x"}, usage=usage))
    assert resp.usage == Usage(input_tokens=10)


MALFORMED_BODIES = [
    b"",
    b"not json",
    b"[]",
    b'{"choices": []}',
    b'{"choices": "x"}',
    b'{"choices": [1]}',
    b'{"choices": [{"message": null}]}',
    b'{"error": {"message": "x"}}',
    b'{"choices": [{"message": {"tool_calls": [{"function": "f"}]}}]}',
]


@pytest.mark.parametrize("body", MALFORMED_BODIES)
def test_malformed_body(body: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        parse(body)
    err = info.value
    assert err.message == "upstream returned a malformed response"
    assert err.status == 502
    assert err.retryable


def test_absurd_token_counts_are_clamped() -> None:
    from relaygate.core.types import TOKEN_COUNT_LIMIT
    from relaygate.providers.openai.response import parse_usage

    usage = parse_usage({"prompt_tokens": 10**30, "completion_tokens": -5})
    assert usage.input_tokens == TOKEN_COUNT_LIMIT
    assert usage.output_tokens == 0
