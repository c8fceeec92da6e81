"""The official ``anthropic`` SDK accepts what the encoder writes: whole messages and streams.

The SDK runs against an ``httpx2.MockTransport`` that answers with the encoder's bytes, so its own
parsing and stream accumulation (``get_final_message``) are what is tested.
"""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx2
import pytest

from relaygate.core.errors import UpstreamError
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
from relaygate.dialects.anthropic import AnthropicDialect

dialect = AnthropicDialect()
REQ = ChatRequest(dialect="anthropic", model="claude-test", messages=())
ARGS = {"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "x"}]}
SIGNATURE = "EqQBCkgIBxABGAIiQLx3m0fZk4P+q2/8m9N0r7Xv1Y5d2c3b4a5f6e7d8c9b0a1f2e3d4==" * 3


def client(status: int, body: bytes, content_type: str) -> anthropic.Anthropic:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(
        api_key="rg-test", base_url="http://gateway.test", http_client=http, max_retries=0
    )


def sse(events: list[StreamEvent]) -> bytes:
    encoder = dialect.stream_encoder(REQ)
    return b"".join(encoder.feed(e) for e in events)


def rich_stream() -> list[StreamEvent]:
    return [
        MessageStart("chatcmpl-1", "claude-test", Usage(input_tokens=12, cache_read_tokens=100)),
        BlockStart(0, ThinkingBlock("")),
        ThinkingDelta(0, "Let me "),
        ThinkingDelta(0, "think."),
        SignatureDelta(0, SIGNATURE),
        BlockStop(0),
        BlockStart(1, TextBlock("")),
        TextDelta(1, "Running "),
        TextDelta(1, "it."),
        BlockStop(1),
        BlockStart(2, ToolUseBlock("toolu_01", "Bash", {})),
        ToolArgsDelta(2, '{"command": "ec'),
        ToolArgsDelta(2, 'ho hi", "n": [1, 2'),
        ToolArgsDelta(2, "]}"),
        BlockStop(2),
        BlockStart(3, ToolUseBlock("toolu_02", "Now", {})),
        BlockStop(3),
        BlockStart(4, RedactedThinkingBlock("opaque==")),
        BlockStop(4),
        MessageDelta(
            FinishReason.TOOL_USE,
            Usage(input_tokens=12, output_tokens=77, cache_read_tokens=100, cache_write_tokens=5),
        ),
        MessageStop(),
    ]


def test_sdk_parses_whole_message() -> None:
    body = dialect.encode_response(
        ChatResponse(
            id="chatcmpl-1",
            model="claude-test",
            content=(
                ThinkingBlock("hmm", SIGNATURE),
                TextBlock("hi"),
                ToolUseBlock("toolu_01", "Bash", {"command": "ls"}),
                RedactedThinkingBlock("opaque=="),
            ),
            finish_reason=FinishReason.TOOL_USE,
            usage=Usage(input_tokens=3, output_tokens=4, cache_read_tokens=5, cache_write_tokens=6),
        )
    )
    message = client(200, body, "application/json").messages.create(**ARGS)  # type: ignore[call-overload]
    assert isinstance(message, anthropic.types.Message)
    assert message.id == "msg_chatcmpl-1"
    thinking, text, tool, redacted = message.content
    assert thinking.type == "thinking"
    assert thinking.signature == SIGNATURE
    assert text.type == "text"
    assert text.text == "hi"
    assert tool.type == "tool_use"
    assert tool.input == {"command": "ls"}
    assert redacted.type == "redacted_thinking"
    assert redacted.data == "opaque=="
    assert message.stop_reason == "tool_use"
    assert message.usage.cache_read_input_tokens == 5
    assert message.usage.cache_creation_input_tokens == 6


Opener = Callable[[anthropic.Anthropic], object]


@pytest.mark.parametrize(
    "open_stream",
    [
        lambda c: c.messages.stream(**ARGS),
        lambda c: c.beta.messages.stream(**ARGS, betas=["interleaved-thinking-2025-05-14"]),
    ],
    ids=["messages", "beta"],
)
def test_sdk_stream_accumulates_final_message(open_stream: Opener) -> None:
    sdk = client(200, sse(rich_stream()), "text/event-stream")
    with open_stream(sdk) as stream:  # type: ignore[attr-defined]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Running it."
    assert final.id == "msg_chatcmpl-1"
    thinking, text_block, tool, no_args, redacted = final.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Let me think."
    assert thinking.signature == SIGNATURE
    assert text_block.text == "Running it."
    assert tool.type == "tool_use"
    assert tool.id == "toolu_01"
    assert tool.input == {"command": "echo hi", "n": [1, 2]}
    assert no_args.type == "tool_use"
    assert no_args.input == {}
    assert redacted.type == "redacted_thinking"
    assert redacted.data == "opaque=="
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens == 12
    assert final.usage.output_tokens == 77
    assert final.usage.cache_read_input_tokens == 100
    assert final.usage.cache_creation_input_tokens == 5


def test_sdk_raises_on_stream_error_event() -> None:
    events: list[StreamEvent] = [
        MessageStart("msg_1", "claude-test", Usage(input_tokens=1)),
        BlockStart(0, TextBlock("")),
        TextDelta(0, "part"),
        StreamError(UpstreamError("upstream overloaded", status=503, kind="overloaded")),
        TextDelta(0, "never sent"),
    ]
    sdk = client(200, sse(events), "text/event-stream")
    with pytest.raises(anthropic.APIStatusError) as caught, sdk.messages.stream(**ARGS) as stream:  # type: ignore[arg-type]
        stream.get_final_message()
    assert "overloaded_error" in str(caught.value)


@pytest.mark.parametrize(
    ("err", "status", "sdk_error"),
    [
        (UpstreamError("busy", status=503, kind="overloaded"), 503, anthropic.InternalServerError),
        (UpstreamError("slow", status=429, kind="rate_limited"), 429, anthropic.RateLimitError),
        (UpstreamError("bad", status=400, kind="invalid_request"), 400, anthropic.BadRequestError),
    ],
)
def test_sdk_reads_error_bodies(err: UpstreamError, status: int, sdk_error: type) -> None:
    sdk = client(status, dialect.encode_error(err, "req_9"), "application/json")
    with pytest.raises(sdk_error) as caught:
        sdk.messages.create(**ARGS)  # type: ignore[call-overload]
    assert caught.value.body["error"]["message"] == err.message  # type: ignore[attr-defined]


def test_sdk_keeps_start_usage_when_final_usage_lacks_input() -> None:
    events: list[StreamEvent] = [
        MessageStart("msg_1", "claude-test", Usage(input_tokens=40, cache_read_tokens=8)),
        BlockStart(0, TextBlock("")),
        TextDelta(0, "hi"),
        BlockStop(0),
        MessageDelta(FinishReason.MAX_TOKENS, Usage(output_tokens=5)),
        MessageStop(),
    ]
    sdk = client(200, sse(events), "text/event-stream")
    with sdk.messages.stream(**ARGS) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (40, 5)
    assert final.usage.cache_read_input_tokens == 8
