"""Replaying recorded-format Anthropic SSE transcripts through the stream parser."""

from __future__ import annotations

from pathlib import Path

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
from relaygate.core.sse import SSEDecoder, SSEFrame
from relaygate.core.types import (
    FinishReason,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.providers.anthropic import AnthropicProvider, AnthropicStreamParser

FIXTURES = Path(__file__).parents[3] / "fixtures" / "anthropic"


def replay(raw: bytes, chunk: int = 0) -> tuple[list[StreamEvent], AnthropicStreamParser]:
    parser = AnthropicProvider().stream_parser()
    decoder = SSEDecoder()
    events: list[StreamEvent] = []
    pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)] if chunk else [raw]
    for piece in pieces:
        for frame in decoder.feed(piece):
            events += parser.feed(frame)
    for frame in decoder.finish():
        events += parser.feed(frame)
    events += parser.finish()
    return events, parser


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("chunk", [0, 1, 7, 64])
def test_text_stream(chunk: int) -> None:
    events, parser = replay(fixture("text_stream.sse"), chunk)
    start_usage = Usage(input_tokens=25, output_tokens=1)
    final_usage = Usage(input_tokens=25, output_tokens=15)
    assert events == [
        MessageStart("msg_01XFDUDYJgAACzvnptvVoYEL", "claude-sonnet-4-5", start_usage),
        BlockStart(0, TextBlock("")),
        TextDelta(0, "Hello"),
        TextDelta(0, "!"),
        BlockStop(0),
        MessageDelta(FinishReason.END_TURN, final_usage, None),
        MessageStop(),
    ]
    assert parser.usage == final_usage


def test_thinking_text_and_tool_use() -> None:
    events, parser = replay(fixture("thinking_tool_stream.sse"), 13)
    signature = next(e for e in events if isinstance(e, SignatureDelta)).signature
    assert signature.startswith("EqQBCkgIBxAB")
    assert signature.endswith("ZyIw==")
    assert events[1:4] == [
        BlockStart(0, ThinkingBlock("")),
        ThinkingDelta(0, "The user wants me to run `echo hi`."),
        ThinkingDelta(0, " I'll use Bash."),
    ]
    tool_start = BlockStart(2, ToolUseBlock("toolu_01A09q90qw90lq917835lq9", "Bash", {}))
    assert tool_start in events
    fragments = "".join(e.partial_json for e in events if isinstance(e, ToolArgsDelta))
    assert fragments == '{"command": "echo hi", "description": "Print hi"}'
    assert [type(e).__name__ for e in events].count("BlockStop") == 3
    usage = Usage(
        input_tokens=12, output_tokens=89, cache_read_tokens=31200, cache_write_tokens=6850
    )
    assert events[-2:] == [MessageDelta(FinishReason.TOOL_USE, usage), MessageStop()]
    assert parser.usage == usage


def test_error_event_mid_stream() -> None:
    events, parser = replay(fixture("error_stream.sse"))
    assert [type(e) for e in events] == [MessageStart, BlockStart, TextDelta, StreamError]
    error = events[-1]
    assert isinstance(error, StreamError)
    assert isinstance(error.error, UpstreamError)
    assert (error.error.status, error.error.kind, error.error.retryable) == (
        503,
        "overloaded",
        True,
    )
    assert "Overloaded" in error.error.message
    assert parser.usage == Usage(input_tokens=40, output_tokens=1)
    assert parser.feed(SSEFrame("message_stop", '{"type":"message_stop"}')) == []


def test_truncated_stream_ends_in_error() -> None:
    events, parser = replay(fixture("truncated_stream.sse"))
    assert isinstance(events[-1], StreamError)
    assert events[-1].error.message == "upstream stream ended early"
    assert isinstance(events[-1].error, UpstreamError)
    assert events[-1].error.retryable
    assert not any(isinstance(e, MessageStop) for e in events)
    assert parser.usage == Usage(input_tokens=30, output_tokens=1)
    assert parser.finish() == []


def test_other_error_types_are_502() -> None:
    parser = AnthropicStreamParser()
    parser.feed(
        SSEFrame("message_start", '{"type":"message_start","message":{"id":"m","model":"x"}}')
    )
    (event,) = parser.feed(
        SSEFrame(
            "error", '{"type":"error","error":{"type":"invalid_request_error","message":"no"}}'
        )
    )
    assert isinstance(event, StreamError)
    assert (event.error.status, event.error.kind) == (502, "upstream")
    assert isinstance(event.error, UpstreamError)
    assert not event.error.retryable


def test_error_before_message_start() -> None:
    parser = AnthropicStreamParser()
    (event,) = parser.feed(SSEFrame("error", '{"type":"error","error":{"type":"api_error"}}'))
    assert isinstance(event, StreamError)
    assert event.error.status == 502


@pytest.mark.parametrize(
    "frame",
    [
        SSEFrame(
            "content_block_start",
            '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        ),
        SSEFrame("message_start", "{broken"),
        SSEFrame("message_start", "[1]"),
        SSEFrame("message_start", '{"type":"message_start","message":"x"}'),
        SSEFrame(
            "message_start",
            '{"type":"message_start","message":{"id":"m","model":"x",'
            '"usage":{"input_tokens":"many"}}}',
        ),
    ],
)
def test_protocol_violations_fail_the_stream(frame: SSEFrame) -> None:
    parser = AnthropicStreamParser()
    (event,) = parser.feed(frame)
    assert isinstance(event, StreamError)
    assert event.error.status == 502
    assert "malformed" in event.error.message
    assert parser.feed(frame) == []


def start_frame() -> SSEFrame:
    return SSEFrame(
        "message_start",
        '{"type":"message_start","message":{"id":"msg_1","model":"m",'
        '"usage":{"input_tokens":3,"output_tokens":1}}}',
    )


def test_server_tool_blocks_skipped_and_renumbered() -> None:
    parser = AnthropicStreamParser()
    frames = [
        start_frame(),
        SSEFrame(
            None,
            '{"type":"content_block_start","index":0,"content_block":'
            '{"type":"server_tool_use","id":"s","name":"web_search","input":{}}}',
        ),
        SSEFrame(
            None,
            '{"type":"content_block_delta","index":0,'
            '"delta":{"type":"input_json_delta","partial_json":"{}"}}',
        ),
        SSEFrame(None, '{"type":"content_block_stop","index":0}'),
        SSEFrame(
            None,
            '{"type":"content_block_start","index":1,"content_block":{"type":"text","text":"pre"}}',
        ),
        SSEFrame(
            None,
            '{"type":"content_block_delta","index":1,'
            '"delta":{"type":"citations_delta","citation":{}}}',
        ),
        SSEFrame(None, '{"type":"content_block_stop","index":1}'),
        SSEFrame(
            None,
            '{"type":"content_block_start","index":2,'
            '"content_block":{"type":"redacted_thinking","data":"opaque"}}',
        ),
        SSEFrame(None, '{"type":"some_future_event"}'),
        SSEFrame("ping", '{"type":"ping"}'),
        SSEFrame(
            None,
            '{"type":"message_delta","delta":{"stop_reason":"end_turn",'
            '"stop_sequence":null},"usage":{"output_tokens":4}}',
        ),
        SSEFrame(
            None,
            '{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":9}}',
        ),
        SSEFrame(None, '{"type":"message_stop"}'),
    ]
    events = [e for f in frames for e in parser.feed(f)]
    usage = Usage(input_tokens=3, output_tokens=9)
    assert events[1:] == [
        BlockStart(0, TextBlock("")),
        TextDelta(0, "pre"),
        BlockStop(0),
        BlockStart(1, RedactedThinkingBlock("opaque")),
        BlockStop(1),
        MessageDelta(FinishReason.END_TURN, usage),
        MessageStop(),
    ]
    assert parser.finish() == []


def test_tool_use_start_with_input_and_duplicate_message_start() -> None:
    parser = AnthropicStreamParser()
    frames = [
        start_frame(),
        start_frame(),
        SSEFrame(
            None,
            '{"type":"content_block_start","index":0,"content_block":'
            '{"type":"tool_use","id":"t","name":"f","input":{"a":1}}}',
        ),
        SSEFrame(
            None,
            '{"type":"content_block_start","index":1,"content_block":'
            '{"type":"thinking","thinking":"x","signature":"s"}}',
        ),
        SSEFrame(None, '{"type":"message_stop"}'),
    ]
    events = [e for f in frames for e in parser.feed(f)]
    assert events[1:] == [
        BlockStart(0, ToolUseBlock("t", "f", {})),
        ToolArgsDelta(0, '{"a":1}'),
        BlockStop(0),
        BlockStart(1, ThinkingBlock("")),
        ThinkingDelta(1, "x"),
        SignatureDelta(1, "s"),
        BlockStop(1),
        MessageDelta(FinishReason.END_TURN, Usage(input_tokens=3, output_tokens=1)),
        MessageStop(),
    ]


def test_delta_for_a_closed_block_fails_the_stream_instead_of_vanishing() -> None:
    # Anthropic blocks never interleave: a fragment for a stopped block is a protocol violation,
    # and dropping it would hand the caller a tool input missing part of its arguments.
    parser = AnthropicStreamParser()
    tool = '{"type":"tool_use","id":"t","name":"f","input":{}}'
    frames = [
        start_frame(),
        SSEFrame(None, '{"type":"content_block_start","index":0,"content_block":' + tool + "}"),
        SSEFrame(None, '{"type":"content_block_stop","index":0}'),
        SSEFrame(
            None,
            '{"type":"content_block_delta","index":0,'
            '"delta":{"type":"input_json_delta","partial_json":"{}"}}',
        ),
    ]
    events = [e for frame in frames for e in parser.feed(frame)]
    assert isinstance(events[-1], StreamError)
    assert "malformed" in events[-1].error.message
