"""OpenAI response and stream encoding, checked against the wire format and the official SDK."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx2
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion

from relaygate.core.errors import RateLimitedError, UpstreamError
from relaygate.core.events import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from relaygate.core.sse import SSEDecoder
from relaygate.core.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.dialects.openai import OpenAIDialect, OpenAIStreamEncoder

CREATED = 1_700_000_000
USAGE = Usage(
    input_tokens=10,
    output_tokens=20,
    cache_read_tokens=90,
    cache_write_tokens=5,
    reasoning_tokens=7,
)


def dialect() -> OpenAIDialect:
    return OpenAIDialect(clock=lambda: CREATED + 0.9)


def request(*, include_usage: bool = True) -> ChatRequest:
    return ChatRequest(
        dialect="openai", model="gpt-4o", messages=(), stream=True, include_usage=include_usage
    )


def response(*content: Any, finish: FinishReason = FinishReason.END_TURN) -> ChatResponse:
    return ChatResponse(
        id="chatcmpl-1", model="gpt-4o", content=tuple(content), finish_reason=finish, usage=USAGE
    )


def encode_stream(events: Sequence[StreamEvent], *, include_usage: bool = True) -> bytes:
    encoder = dialect().stream_encoder(request(include_usage=include_usage))
    return b"".join(encoder.feed(e) for e in events)


def data_frames(raw: bytes) -> list[str]:
    decoder = SSEDecoder()
    frames = decoder.feed(raw) + decoder.finish()
    assert all(f.event is None for f in frames)
    return [f.data for f in frames]


def sdk_client(body: bytes, content_type: str) -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)

    transport = httpx2.MockTransport(handler)
    return openai.OpenAI(
        api_key="rg-test",
        base_url="http://gateway.test/v1",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )


TOOL_EVENTS: list[StreamEvent] = [
    MessageStart("chatcmpl-9", "gpt-4o", Usage()),
    BlockStart(0, ThinkingBlock("")),
    ThinkingDelta(0, "hmm"),
    SignatureDelta(0, "sig"),
    BlockStop(0),
    BlockStart(1, TextBlock("")),
    TextDelta(1, "Let me "),
    TextDelta(1, "check."),
    BlockStop(1),
    BlockStart(2, ToolUseBlock("call_a", "weather", {})),
    ToolArgsDelta(2, '{"city":'),
    ToolArgsDelta(2, '"Paris"}'),
    BlockStop(2),
    BlockStart(3, ToolUseBlock("call_b", "time", {})),
    ToolArgsDelta(3, "{}"),
    BlockStop(3),
    MessageDelta(FinishReason.TOOL_USE, USAGE),
    MessageStop(),
]


# ---- non-streaming ---------------------------------------------------------------------------


def test_text_response() -> None:
    body = orjson.loads(dialect().encode_response(response(TextBlock("Hel"), TextBlock("lo"))))
    assert body == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 105,
            "completion_tokens": 20,
            "total_tokens": 125,
            "prompt_tokens_details": {"cached_tokens": 90},
            "completion_tokens_details": {"reasoning_tokens": 7},
        },
    }


def test_tool_call_response_with_reasoning() -> None:
    resp = response(
        ThinkingBlock("think", signature="s"),
        RedactedThinkingBlock("opaque"),
        ToolUseBlock("call_1", "f", {"a": [1, "é"]}),
        finish=FinishReason.TOOL_USE,
    )
    message = orjson.loads(dialect().encode_response(resp))["choices"][0]["message"]
    assert message["content"] is None
    assert message["reasoning_content"] == "think"
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a":[1,"é"]}'},
        }
    ]


@pytest.mark.parametrize(
    ("reason", "wire"),
    [
        (FinishReason.END_TURN, "stop"),
        (FinishReason.STOP_SEQUENCE, "stop"),
        (FinishReason.MAX_TOKENS, "length"),
        (FinishReason.TOOL_USE, "tool_calls"),
        (FinishReason.CONTENT_FILTER, "content_filter"),
        (FinishReason.PAUSE_TURN, "stop"),
    ],
)
def test_finish_reasons(reason: FinishReason, wire: str) -> None:
    body = orjson.loads(dialect().encode_response(response(TextBlock("x"), finish=reason)))
    assert body["choices"][0]["finish_reason"] == wire


def test_sdk_parses_response() -> None:
    resp = response(
        TextBlock("Hi"), ToolUseBlock("call_1", "f", {"x": 1}), finish=FinishReason.TOOL_USE
    )
    raw = dialect().encode_response(resp)
    parsed = ChatCompletion.model_validate_json(raw)
    assert parsed.choices[0].message.content == "Hi"
    assert parsed.choices[0].finish_reason == "tool_calls"
    assert parsed.usage is not None
    assert parsed.usage.prompt_tokens_details is not None
    assert parsed.usage.prompt_tokens_details.cached_tokens == 90
    client = sdk_client(raw, "application/json")
    completion = client.chat.completions.create(model="gpt-4o", messages=[])
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].type == "function"
    assert calls[0].function.arguments == '{"x":1}'


# ---- streaming ---------------------------------------------------------------------------------


def test_stream_chunk_sequence() -> None:
    frames = data_frames(encode_stream(TOOL_EVENTS))
    assert frames[-1] == "[DONE]"
    chunks = [orjson.loads(f) for f in frames[:-1]]
    for chunk in chunks:
        assert chunk["id"] == "chatcmpl-9"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["created"] == CREATED
        assert chunk["model"] == "gpt-4o"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "hmm"},
        {"content": "Let me "},
        {"content": "check."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "time", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {},
    ]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes == [None] * 9 + ["tool_calls"]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 105
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 7}


def test_stream_without_include_usage_has_no_usage() -> None:
    frames = data_frames(encode_stream(TOOL_EVENTS, include_usage=False))
    assert frames[-1] == "[DONE]"
    chunks = [orjson.loads(f) for f in frames[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_nothing_after_stop() -> None:
    encoder = OpenAIStreamEncoder(request(), CREATED)
    for event in TOOL_EVENTS:
        encoder.feed(event)
    assert encoder.feed(TextDelta(1, "late")) == b""
    assert encoder.feed(MessageStop()) == b""


def test_stream_error_frame_ends_stream() -> None:
    encoder = OpenAIStreamEncoder(request(), CREATED)
    head = encoder.feed(MessageStart("chatcmpl-e", "m", Usage()))
    head += encoder.feed(BlockStart(0, TextBlock("")))
    head += encoder.feed(TextDelta(0, "partial"))
    err = encoder.feed(StreamError(UpstreamError("upstream stream ended early")))
    assert err.startswith(b"data: ")
    assert err.endswith(b"\n\n")
    assert orjson.loads(err[6:]) == {
        "error": {
            "message": "upstream stream ended early",
            "type": "server_error",
            "param": None,
            "code": "upstream_error",
        }
    }
    assert encoder.feed(MessageDelta(FinishReason.END_TURN, Usage())) == b""
    assert encoder.feed(MessageStop()) == b""
    assert b"[DONE]" not in head + err


def test_error_before_any_chunk() -> None:
    encoder = OpenAIStreamEncoder(request(), CREATED)
    out = encoder.feed(StreamError(RateLimitedError("slow down", retry_after=2)))
    assert data_frames(out) == [
        '{"error":{"message":"slow down","type":"rate_limit_error","param":null,'
        '"code":"rate_limit_exceeded"}}'
    ]


def test_tool_block_with_whole_input_sends_arguments_at_once() -> None:
    encoder = OpenAIStreamEncoder(request(), CREATED)
    encoder.feed(MessageStart("c", "m", Usage()))
    out = encoder.feed(BlockStart(0, ToolUseBlock("call", "f", {"q": 1})))
    chunk = orjson.loads(data_frames(out)[0])
    assert chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '{"q":1}'


def test_sdk_accumulates_stream() -> None:
    client = sdk_client(encode_stream(TOOL_EVENTS), "text/event-stream")
    with client.chat.completions.stream(model="gpt-4o", messages=[]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_a", "weather", '{"city":"Paris"}'),
        ("call_b", "time", "{}"),
    ]
    assert final.usage is not None
    assert final.usage.total_tokens == 125


def test_sdk_raises_on_error_frame() -> None:
    events: list[StreamEvent] = [
        MessageStart("chatcmpl-e", "m", Usage()),
        BlockStart(0, TextBlock("")),
        TextDelta(0, "partial"),
        StreamError(UpstreamError("upstream stream ended early")),
    ]
    client = sdk_client(encode_stream(events), "text/event-stream")
    stream = client.chat.completions.create(model="m", messages=[], stream=True)
    first = next(stream)
    assert first.choices[0].delta.role == "assistant"
    seen = next(stream).choices[0].delta.content
    with pytest.raises(openai.APIError, match="upstream stream ended early"):
        next(stream)
    assert seen == "partial"
