"""A whole JSON answer to a stream request: detected, turned into events, or into its error."""

from __future__ import annotations

import orjson
import pytest

from relaygate.core.errors import UpstreamError
from relaygate.core.events import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    TextDelta,
    ToolArgsDelta,
)
from relaygate.core.types import FinishReason, TextBlock, ToolUseBlock, Usage
from relaygate.providers.anthropic import AnthropicProvider
from relaygate.providers.openai import OpenAIProvider
from relaygate.relay.json_answer import is_json_answer, whole_answer_events

OPENAI_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "hi",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3},
}


@pytest.mark.parametrize(
    ("headers", "first", "expected"),
    [
        ({"content-type": "application/json"}, b'{"id":', True),
        ({"Content-Type": "application/json; charset=utf-8"}, b"{", True),
        ({}, b'  {"id":', True),
        ({"content-type": "text/event-stream"}, b"data: {}\n\n", False),
        ({}, b"data: {}\n\n", False),
        ({"content-type": "text/event-stream"}, b"{", False),
    ],
)
def test_is_json_answer(headers: dict[str, str], first: bytes, expected: bool) -> None:
    assert is_json_answer(headers, first) is expected


def test_openai_answer_becomes_a_well_formed_stream() -> None:
    events, usage = whole_answer_events(OpenAIProvider(), orjson.dumps(OPENAI_ANSWER))
    assert usage == Usage(input_tokens=5, output_tokens=3)
    assert events == [
        MessageStart("chatcmpl-1", "m", Usage(input_tokens=5)),
        BlockStart(0, TextBlock("")),
        TextDelta(0, "hi"),
        BlockStop(0),
        BlockStart(1, ToolUseBlock("call_1", "f", {})),
        ToolArgsDelta(1, '{"a":1}'),
        BlockStop(1),
        MessageDelta(FinishReason.TOOL_USE, usage),
        MessageStop(),
    ]


def test_anthropic_answer_becomes_a_well_formed_stream() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [{"type": "text", "text": "yo"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 2, "output_tokens": 1},
    }
    events, _ = whole_answer_events(AnthropicProvider(), orjson.dumps(body))
    assert events[1:4] == [BlockStart(0, TextBlock("")), TextDelta(0, "yo"), BlockStop(0)]
    assert events[-2:] == [MessageDelta(FinishReason.END_TURN, Usage(2, 1)), MessageStop()]


@pytest.mark.parametrize(
    ("provider", "body", "said"),
    [
        (OpenAIProvider(), {"error": {"message": "quota gone", "type": "server_error"}}, "quota"),
        (
            AnthropicProvider(),
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
            "busy",
        ),
    ],
)
def test_error_body_with_status_200_is_the_error_it_reports(
    provider: OpenAIProvider | AnthropicProvider, body: dict[str, object], said: str
) -> None:
    with pytest.raises(UpstreamError) as info:
        whole_answer_events(provider, orjson.dumps(body))
    assert said in info.value.message and "malformed" not in info.value.message
    assert info.value.retryable


def test_a_body_that_is_neither_answer_nor_error_is_malformed() -> None:
    with pytest.raises(UpstreamError, match="malformed"):
        whole_answer_events(OpenAIProvider(), b'{"choices": 3}')
