"""The Anthropic SSE event sequence, including what it repairs in a sloppy event stream."""

from __future__ import annotations

from typing import Any

import orjson

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
from relaygate.core.sse import SSEDecoder
from relaygate.core.types import (
    ChatRequest,
    FinishReason,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.dialects.anthropic import AnthropicDialect

REQ = ChatRequest(dialect="anthropic", model="requested-model", messages=())


def encode(events: list[StreamEvent]) -> bytes:
    encoder = AnthropicDialect().stream_encoder(REQ)
    return b"".join(encoder.feed(event) for event in events)


def frames(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    decoder = SSEDecoder()
    parsed = decoder.feed(raw) + decoder.finish()
    out = [(f.event, orjson.loads(f.data)) for f in parsed]
    for name, payload in out:
        assert name == payload["type"]
    return out


def names(raw: bytes) -> list[str | None]:
    return [name for name, _ in frames(raw)]


def test_text_stream_exact_bytes() -> None:
    raw = encode(
        [
            MessageStart("msg_1", "claude-x", Usage(input_tokens=5, output_tokens=1)),
            BlockStart(0, TextBlock("")),
            TextDelta(0, "Hi"),
            BlockStop(0),
            MessageDelta(FinishReason.END_TURN, Usage(input_tokens=5, output_tokens=2)),
            MessageStop(),
        ]
    )
    assert raw == (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"type":"message","role":"assistant","model":"claude-x","content":[],'
        b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1,'
        b'"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
        b'"stop_sequence":null},"usage":{"output_tokens":2,"input_tokens":5}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )


def test_thinking_signature_and_tool_args() -> None:
    out = frames(
        encode(
            [
                MessageStart("chatcmpl-9", "m", Usage(input_tokens=3)),
                BlockStart(0, ThinkingBlock("")),
                ThinkingDelta(0, "hmm"),
                SignatureDelta(0, "sig"),
                BlockStop(0),
                BlockStart(1, ToolUseBlock("toolu_1", "Bash", {})),
                ToolArgsDelta(1, '{"command":'),
                ToolArgsDelta(1, ""),
                ToolArgsDelta(1, '"ls"}'),
                BlockStop(1),
                MessageDelta(FinishReason.TOOL_USE, Usage(output_tokens=9)),
                MessageStop(),
            ]
        )
    )
    assert out[0][1]["message"]["id"] == "msg_chatcmpl-9"
    assert out[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert out[2][1]["delta"] == {"type": "thinking_delta", "thinking": "hmm"}
    assert out[3][1]["delta"] == {"type": "signature_delta", "signature": "sig"}
    assert out[5][1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}},
    }
    fragments = [
        p["delta"]["partial_json"]
        for n, p in out
        if n == "content_block_delta" and p["delta"]["type"] == "input_json_delta"
    ]
    assert fragments == ['{"command":', '"ls"}']
    delta = out[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {"output_tokens": 9}


def test_tool_use_without_fragments_gets_empty_object() -> None:
    out = frames(
        encode(
            [
                MessageStart("msg_1", "m", Usage()),
                BlockStart(0, ToolUseBlock("toolu_1", "Now", {})),
                BlockStop(0),
                MessageDelta(FinishReason.TOOL_USE, Usage()),
                MessageStop(),
            ]
        )
    )
    assert out[2][1]["delta"] == {"type": "input_json_delta", "partial_json": "{}"}
    assert out[3][0] == "content_block_stop"


def test_tool_use_with_whole_input_streams_it_as_one_fragment() -> None:
    out = frames(
        encode(
            [
                MessageStart("msg_1", "m", Usage()),
                BlockStart(0, ToolUseBlock("toolu_1", "Bash", {"command": "ls"})),
                BlockStop(0),
            ]
        )
    )
    assert out[1][1]["content_block"]["input"] == {}
    assert out[2][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"command":"ls"}'}
    assert [n for n, _ in out].count("content_block_delta") == 1


def test_redacted_thinking_block() -> None:
    out = frames(
        encode(
            [
                MessageStart("msg_1", "m", Usage()),
                BlockStart(0, RedactedThinkingBlock("opaque")),
                BlockStop(0),
            ]
        )
    )
    assert out[1][1]["content_block"] == {"type": "redacted_thinking", "data": "opaque"}
    assert out[2][0] == "content_block_stop"


def test_exactly_one_message_start_and_indices_renumbered() -> None:
    raw = encode(
        [
            MessageStart("msg_1", "m", Usage()),
            MessageStart("msg_2", "m", Usage()),
            BlockStart(3, TextBlock("")),
            TextDelta(3, "a"),
            BlockStop(3),
            BlockStart(7, TextBlock("pre")),
            BlockStop(7),
            MessageDelta(FinishReason.END_TURN, Usage()),
            MessageStop(),
        ]
    )
    out = frames(raw)
    assert names(raw).count("message_start") == 1
    indices = [p["index"] for _, p in out if "index" in p]
    assert indices == [0, 0, 0, 1, 1, 1]
    assert out[5][1]["delta"] == {"type": "text_delta", "text": "pre"}


def test_synthesises_start_and_closes_open_blocks() -> None:
    raw = encode([TextDelta(0, "orphan"), ThinkingDelta(0, "wrong kind"), MessageStop()])
    assert names(raw) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    out = frames(raw)
    assert out[0][1]["message"]["model"] == "requested-model"
    assert out[4][1]["content_block"]["type"] == "thinking"
    assert out[5][1]["index"] == 1
    assert out[7][1]["delta"]["stop_reason"] == "end_turn"


def test_deltas_for_other_kinds_are_not_misplaced() -> None:
    out = frames(
        encode(
            [
                MessageStart("msg_1", "m", Usage()),
                BlockStart(0, TextBlock("")),
                SignatureDelta(0, "stray"),
                ToolArgsDelta(0, "{}"),
                BlockStop(0),
                BlockStop(0),
            ]
        )
    )
    assert [n for n, _ in out] == ["message_start", "content_block_start", "content_block_stop"]


def test_error_ends_the_stream() -> None:
    encoder = AnthropicDialect().stream_encoder(REQ)
    start = encoder.feed(MessageStart("msg_1", "m", Usage()))
    error = encoder.feed(
        StreamError(UpstreamError("upstream overloaded", status=503, kind="overloaded"))
    )
    assert start.startswith(b"event: message_start")
    assert error == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"upstream overloaded"}}\n\n'
    )
    assert encoder.feed(TextDelta(0, "late")) == b""
    assert encoder.feed(MessageStop()) == b""


def test_error_as_first_event_has_no_message_start() -> None:
    raw = encode([StreamError(UpstreamError("gone"))])
    assert names(raw) == ["error"]
    assert frames(raw)[0][1]["error"]["type"] == "api_error"


def test_nothing_after_message_stop() -> None:
    encoder = AnthropicDialect().stream_encoder(REQ)
    encoder.feed(MessageStop())
    assert encoder.feed(MessageStart("x", "m", Usage())) == b""
    assert encoder.feed(StreamError(UpstreamError("late"))) == b""
