"""Building upstream requests: same-dialect relay keeps the body, other dialects are translated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.core.errors import InvalidRequestError, UpstreamError
from relaygate.core.types import (
    ChatRequest,
    ImageBlock,
    Message,
    ResponseFormat,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.providers.anthropic import AnthropicProvider
from relaygate.providers.base import UpstreamTarget

FIXTURES = Path(__file__).parents[3] / "fixtures" / "anthropic"
HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,context-management-2025-06-27",
}
TARGET = UpstreamTarget(
    base_url="https://api.anthropic.test/",
    model="claude-upstream-1",
    api_key="sk-ant-secret",
    headers={"x-extra": "1"},
    default_max_tokens=777,
)
provider = AnthropicProvider()


def neutral(**fields: Any) -> ChatRequest:
    base: dict[str, Any] = {
        "dialect": "openai",
        "model": "gpt-alias",
        "messages": (Message("user", (TextBlock("hi"),)),),
    }
    base.update(fields)
    return ChatRequest(**base)


def translated(req: ChatRequest) -> dict[str, Any]:
    built = provider.build_request(req, TARGET, "req_1")
    body: dict[str, Any] = orjson.loads(built.body)
    return body


@pytest.mark.parametrize("name", ["claude_code_request.json", "claude_code_request_turn1.json"])
def test_claude_code_body_relayed_byte_for_byte_apart_from_model(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    req = AnthropicDialect().decode_request(raw, HEADERS)
    built = provider.build_request(req, TARGET, "req_1")
    assert built.body == raw.replace(b'"model":"claude-opus-5-5"', b'"model":"claude-upstream-1"')
    assert built.url == "https://api.anthropic.test/v1/messages"
    assert built.method == "POST"
    assert built.stream is True


def test_same_model_relays_identical_bytes() -> None:
    raw = (FIXTURES / "claude_code_request.json").read_bytes()
    req = AnthropicDialect().decode_request(raw, HEADERS)
    target = UpstreamTarget(base_url="http://up", model="claude-opus-5-5")
    assert provider.build_request(req, target, "r").body == raw


def test_headers() -> None:
    req = AnthropicDialect().decode_request(
        (FIXTURES / "claude_code_request.json").read_bytes(), HEADERS
    )
    headers = provider.build_request(req, TARGET, "req_1").headers
    assert headers == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,context-management-2025-06-27",
        "x-request-id": "req_1",
        "x-api-key": "sk-ant-secret",
        "x-extra": "1",
    }


def test_headers_default_version_no_beta_no_key() -> None:
    target = UpstreamTarget(base_url="http://up", model="m")
    headers = provider.build_request(neutral(), target, "r").headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in headers
    assert "x-api-key" not in headers


def test_translation_basics() -> None:
    body = translated(
        neutral(
            system=(TextBlock("Be brief.", {"type": "ephemeral"}),),
            temperature=0.2,
            top_p=0.5,
            stop=("END",),
            stream=True,
            user="u-1",
            metadata={"openai_only": "x"},
            include_usage=True,
        )
    )
    assert body == {
        "model": "claude-upstream-1",
        "max_tokens": 777,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.5,
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }
    assert translated(neutral(max_tokens=5))["max_tokens"] == 5


def test_system_turns_move_to_system_and_tool_results_merge() -> None:
    messages = (
        Message("system", (TextBlock("rules"),)),
        Message("user", (TextBlock("run both"),)),
        Message("system", (TextBlock("more rules"),)),
        Message(
            "assistant",
            (
                TextBlock(""),
                ToolUseBlock("call_1", "a", {"x": 1}),
                ToolUseBlock("call_2", "b", {}),
            ),
        ),
        Message("user", (ToolResultBlock("call_1", (TextBlock("one"),)),)),
        Message("user", (ToolResultBlock("call_2", (), is_error=True),)),
        Message("user", (TextBlock("and now?"),)),
    )
    body = translated(neutral(messages=messages))
    assert body["system"] == [
        {"type": "text", "text": "rules"},
        {"type": "text", "text": "more rules"},
    ]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "a", "input": {"x": 1}},
        {"type": "tool_use", "id": "call_2", "name": "b", "input": {}},
    ]
    assert body["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "call_1",
            "content": [{"type": "text", "text": "one"}],
        },
        {"type": "tool_result", "tool_use_id": "call_2", "is_error": True},
        {"type": "text", "text": "and now?"},
    ]


def test_tool_results_are_put_first_in_a_merged_user_turn() -> None:
    messages = (
        Message("assistant", (ToolUseBlock("c1", "a", {}),)),
        Message("user", (TextBlock("note"),)),
        Message("user", (ToolResultBlock("c1", (TextBlock("r"),)),)),
    )
    content = translated(neutral(messages=messages))["messages"][1]["content"]
    assert [b["type"] for b in content] == ["tool_result", "text"]


def test_unsigned_thinking_dropped_signed_kept() -> None:
    messages = (
        Message("user", (TextBlock("q"),)),
        Message(
            "assistant", (ThinkingBlock("free", None), ThinkingBlock("kept", "sig"), TextBlock("a"))
        ),
    )
    content = translated(neutral(messages=messages))["messages"][1]["content"]
    assert content == [
        {"type": "thinking", "thinking": "kept", "signature": "sig"},
        {"type": "text", "text": "a"},
    ]


def test_images() -> None:
    blocks = (
        ImageBlock(url="data:image/jpeg;base64,/9j/4AAQ"),
        ImageBlock(url="https://example.com/cat.png"),
        ImageBlock(media_type="image/webp", data="UklG"),
    )
    content = translated(neutral(messages=(Message("user", blocks),)))["messages"][0]["content"]
    assert content == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklG"}},
    ]
    with pytest.raises(InvalidRequestError):
        translated(neutral(messages=(Message("user", (ImageBlock(url="data:text/plain,hi"),)),)))


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (ToolChoice("auto"), {"type": "auto"}),
        (
            ToolChoice("any", disable_parallel=True),
            {"type": "any", "disable_parallel_tool_use": True},
        ),
        (ToolChoice("tool", "f"), {"type": "tool", "name": "f"}),
        (ToolChoice("none", disable_parallel=True), {"type": "none"}),
    ],
)
def test_tools_and_tool_choice(choice: ToolChoice, wire: dict[str, Any]) -> None:
    tool = Tool("f", "does f", {"type": "object"}, extra={"strict": True})
    body = translated(neutral(tools=(tool,), tool_choice=choice))
    assert body["tools"] == [
        {"name": "f", "input_schema": {"type": "object"}, "description": "does f"}
    ]
    assert body["tool_choice"] == wire


def test_tool_choice_without_tools_is_dropped() -> None:
    assert "tool_choice" not in translated(neutral(tool_choice=ToolChoice("auto")))


def test_response_format_becomes_system_instruction() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = translated(neutral(response_format=ResponseFormat("json_schema", "x", schema)))
    (instruction,) = body["system"]
    assert "JSON" in instruction["text"]
    assert orjson.dumps(schema).decode() in instruction["text"]
    body = translated(neutral(response_format=ResponseFormat("json_object")))
    assert "JSON Schema" not in body["system"][0]["text"]


def test_count_tokens_passthrough_drops_messages_only_fields() -> None:
    raw = (FIXTURES / "claude_code_request.json").read_bytes()
    req = AnthropicDialect().decode_request(raw, HEADERS)
    built = provider.build_count_tokens(req, TARGET, "r")
    assert built.url == "https://api.anthropic.test/v1/messages/count_tokens"
    body = orjson.loads(built.body)
    expected = {
        k: v for k, v in orjson.loads(raw).items() if k not in ("max_tokens", "stream", "metadata")
    }
    assert body == {**expected, "model": "claude-upstream-1"}
    assert built.headers["anthropic-beta"] == HEADERS["anthropic-beta"]


def test_count_tokens_from_count_tokens_request() -> None:
    raw = (FIXTURES / "count_tokens_request.json").read_bytes()
    req = AnthropicDialect().decode_count_tokens(raw, HEADERS)
    body = orjson.loads(provider.build_count_tokens(req, TARGET, "r").body)
    assert body == {**orjson.loads(raw), "model": "claude-upstream-1"}


def test_count_tokens_translated() -> None:
    req = neutral(
        system=(TextBlock("sys"),),
        max_tokens=10,
        stream=True,
        tools=(Tool("f", None, {"type": "object"}),),
    )
    body = orjson.loads(provider.build_count_tokens(req, TARGET, "r").body)
    assert body == {
        "model": "claude-upstream-1",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "system": [{"type": "text", "text": "sys"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    }


def test_parse_count_tokens() -> None:
    assert provider.parse_count_tokens(b'{"input_tokens": 42}') == 42
    for bad in (b"nope", b"[]", b'{"input_tokens": "3"}', b'{"input_tokens": -1}', b"{}"):
        with pytest.raises(UpstreamError) as caught:
            provider.parse_count_tokens(bad)
        assert caught.value.status == 502
        assert caught.value.retryable


def test_whitespace_only_stop_sequences_are_dropped() -> None:
    # Anthropic answers 400 "each stop sequence must contain non-whitespace"; OpenAI takes "\n".
    assert translated(neutral(stop=("\n", "END", " ", "")))["stop_sequences"] == ["END"]
    assert "stop_sequences" not in translated(neutral(stop=("\n\n",)))


def test_temperature_above_anthropic_range_is_clamped() -> None:
    # OpenAI allows 0..2, Anthropic 0..1 (400 above it).
    assert translated(neutral(temperature=1.7))["temperature"] == 1.0
    assert translated(neutral(temperature=0.7))["temperature"] == 0.7
