"""The OpenAI stream parser, replaying recorded-format transcripts and edge cases."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.core.errors import UpstreamError
from relaygate.core.events import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    StreamError,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from relaygate.core.sse import SSEDecoder, SSEFrame
from relaygate.core.types import FinishReason, TextBlock, ThinkingBlock, ToolUseBlock, Usage
from relaygate.providers.openai import OpenAIProvider, OpenAIStreamParser

FIXTURES = Path(__file__).parents[3] / "fixtures" / "openai"


def replay(raw: bytes, chunk_size: int = 0) -> tuple[list[StreamEvent], OpenAIStreamParser]:
    parser = OpenAIProvider().stream_parser()
    decoder = SSEDecoder()
    events: list[StreamEvent] = []
    pieces = (
        [raw[i : i + chunk_size] for i in range(0, len(raw), chunk_size)] if chunk_size else [raw]
    )
    for piece in pieces:
        for frame in decoder.feed(piece):
            events.extend(parser.feed(frame))
    for frame in decoder.finish():
        events.extend(parser.feed(frame))
    events.extend(parser.finish())
    return events, parser


def fixture(name: str, chunk_size: int = 0) -> tuple[list[StreamEvent], OpenAIStreamParser]:
    return replay((FIXTURES / name).read_bytes(), chunk_size)


def frames(*chunks: Any) -> list[SSEFrame]:
    return [SSEFrame(None, c if isinstance(c, str) else orjson.dumps(c).decode()) for c in chunks]


def run(chunks: Iterable[SSEFrame]) -> list[StreamEvent]:
    parser = OpenAIStreamParser()
    events: list[StreamEvent] = []
    for frame in chunks:
        events.extend(parser.feed(frame))
    return events + parser.finish()


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: Any = None,
    choices: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    body["choices"] = (
        [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    )
    if usage is not None:
        body["usage"] = usage
    return body


def check_contract(events: list[StreamEvent]) -> None:
    """Exactly one start; blocks open and close in order; one terminal event."""
    assert isinstance(events[0], MessageStart)
    assert sum(isinstance(e, MessageStart) for e in events) == 1
    expected, open_index = 0, None
    for event in events[1:-1]:
        if isinstance(event, BlockStart):
            assert open_index is None
            assert event.index == expected
            open_index, expected = event.index, expected + 1
        elif isinstance(event, BlockStop):
            assert event.index == open_index
            open_index = None
        elif isinstance(event, TextDelta | ThinkingDelta | ToolArgsDelta):
            assert event.index == open_index
    assert isinstance(events[-1], MessageStop | StreamError)


@pytest.mark.parametrize("chunk_size", [0, 1, 7, 64])
def test_text_with_usage(chunk_size: int) -> None:
    events, parser = fixture("stream_text_usage.sse", chunk_size)
    check_contract(events)
    assert events[0] == MessageStart("chatcmpl-BAtext0001", "gpt-4o-mini-2024-07-18", Usage())
    assert events[1] == BlockStart(0, TextBlock(""))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Hello! How can I help you today?"
    usage = Usage(input_tokens=19, output_tokens=10)
    assert events[-3:] == [BlockStop(0), MessageDelta(FinishReason.END_TURN, usage), MessageStop()]
    assert parser.usage == usage


def test_parallel_tool_calls() -> None:
    events, _ = fixture("stream_parallel_tool_calls.sse", 13)
    check_contract(events)
    starts = [e for e in events if isinstance(e, BlockStart)]
    assert starts == [
        BlockStart(0, ToolUseBlock("call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather", {})),
        BlockStart(1, ToolUseBlock("call_ABCdef1234567890ghijklmn", "get_weather", {})),
    ]
    args = {
        i: "".join(e.partial_json for e in events if isinstance(e, ToolArgsDelta) and e.index == i)
        for i in (0, 1)
    }
    assert orjson.loads(args[0]) == {"location": "Paris, France"}
    assert orjson.loads(args[1]) == {"location": "Bogotá, Colombia"}
    assert events[-2] == MessageDelta(
        FinishReason.TOOL_USE, Usage(input_tokens=70, output_tokens=48, cache_read_tokens=1280)
    )


def test_error_chunk() -> None:
    events, parser = fixture("stream_error.sse")
    assert isinstance(events[-1], StreamError)
    err = events[-1].error
    assert isinstance(err, UpstreamError)
    assert err.message == (
        "upstream error: The server had an error while processing your request. Sorry about that!"
    )
    assert err.status == 502
    assert err.retryable
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["The answer"]
    assert not any(isinstance(e, MessageStop | MessageDelta) for e in events)
    assert parser.feed(SSEFrame(None, "[DONE]")) == []
    assert parser.finish() == []


def test_truncated_stream_is_an_error() -> None:
    events, parser = fixture("stream_truncated.sse")
    assert sum(isinstance(e, StreamError) for e in events) == 1
    err = events[-1]
    assert isinstance(err, StreamError)
    # SSEDecoder.finish() flushes the half frame, which is not JSON.
    assert err.error.message == "upstream returned a malformed response"
    assert not any(isinstance(e, MessageStop) for e in events)
    assert parser.usage == Usage()


def test_cut_between_frames_ends_early() -> None:
    raw = (FIXTURES / "stream_truncated.sse").read_bytes()
    raw = raw[: raw.rindex(b"data: ")]
    events, _ = replay(raw)
    last = events[-1]
    assert isinstance(last, StreamError)
    assert last.error.message == "upstream stream ended early"
    assert last.error.status == 502


def test_usage_in_finish_chunk_without_done() -> None:
    events, parser = fixture("stream_usage_in_finish_no_done.sse")
    check_contract(events)
    assert [type(e) for e in events[1:3]] == [BlockStart, ThinkingDelta]
    assert events[1] == BlockStart(0, ThinkingBlock(""))
    thinking = "".join(e.thinking for e in events if isinstance(e, ThinkingDelta))
    assert thinking == "Compare 0.11 with 0.8."
    assert BlockStart(1, TextBlock("")) in events
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "9.8 is larger."
    usage = Usage(input_tokens=4, output_tokens=30, cache_read_tokens=16, reasoning_tokens=22)
    assert events[-2:] == [MessageDelta(FinishReason.END_TURN, usage), MessageStop()]
    assert parser.usage == usage


def test_finish_then_done_without_usage() -> None:
    events = run(frames(chunk({"content": "hi"}), chunk({}, "length"), "[DONE]"))
    check_contract(events)
    assert events[-2] == MessageDelta(FinishReason.MAX_TOKENS, Usage())


def test_finish_then_end_of_input_completes() -> None:
    events = run(frames(chunk({"content": "hi"}), chunk({}, "stop")))
    assert events[-2:] == [MessageDelta(FinishReason.END_TURN, Usage()), MessageStop()]


def test_done_without_finish_reason_completes() -> None:
    events = run(frames(chunk({"content": "hi"}), "[DONE]"))
    check_contract(events)
    assert events[-3:] == [
        BlockStop(0),
        MessageDelta(FinishReason.END_TURN, Usage()),
        MessageStop(),
    ]


def test_done_alone_is_an_error() -> None:
    events = run(frames("[DONE]"))
    assert len(events) == 1
    assert isinstance(events[0], StreamError)


def test_empty_input_is_an_error() -> None:
    events = run([])
    assert len(events) == 1
    assert isinstance(events[0], StreamError)
    assert events[0].error.message == "upstream stream ended early"


def test_no_chunks_after_finish_without_usage_is_not_early() -> None:
    parser = OpenAIStreamParser()
    parser.feed(frames(chunk({}, "stop"))[0])
    assert isinstance(parser.finish()[-1], MessageStop)


def test_malformed_chunk_mid_stream() -> None:
    events = run(frames(chunk({"content": "a"}), "{not json"))
    last = events[-1]
    assert isinstance(last, StreamError)
    assert isinstance(last.error, UpstreamError)
    assert last.error.message == "upstream returned a malformed response"
    assert last.error.retryable


def test_non_object_chunk() -> None:
    events = run(frames("[1, 2]"))
    assert len(events) == 1
    assert isinstance(events[0], StreamError)


def test_error_event_name() -> None:
    events = run([SSEFrame("error", '{"message": "overloaded"}')])
    assert isinstance(events[-1], StreamError)
    assert events[-1].error.message == "upstream error: overloaded"


def test_invalid_request_error_chunk_not_retryable() -> None:
    bad = {"error": {"message": "bad", "type": "invalid_request_error"}}
    events = run(frames(bad))
    assert isinstance(events[0], StreamError)
    assert isinstance(events[0].error, UpstreamError)
    assert not events[0].error.retryable


def test_blank_and_ping_frames_ignored() -> None:
    events = run(
        [
            SSEFrame(None, ""),
            SSEFrame("ping", ""),
            *frames(chunk({"content": "x"}), chunk({}, "stop"), "[DONE]"),
        ]
    )
    check_contract(events)


def test_usage_property_tracks_running_usage() -> None:
    parser = OpenAIStreamParser()
    parser.feed(
        frames(chunk({"content": "x"}, usage={"prompt_tokens": 5, "completion_tokens": 1}))[0]
    )
    assert parser.usage == Usage(input_tokens=5, output_tokens=1)


def test_tool_calls_without_index_and_whole_arguments() -> None:
    events = run(
        frames(
            chunk(
                {
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x":1}'},
                        },
                        {
                            "id": "b",
                            "type": "function",
                            "function": {"name": "g", "arguments": {"y": 2}},
                        },
                    ]
                }
            ),
            chunk({}, "stop"),
            "[DONE]",
        )
    )
    check_contract(events)
    assert events[1:7] == [
        BlockStart(0, ToolUseBlock("a", "f", {})),
        ToolArgsDelta(0, '{"x":1}'),
        BlockStop(0),
        BlockStart(1, ToolUseBlock("b", "g", {})),
        ToolArgsDelta(1, '{"y":2}'),
        BlockStop(1),
    ]
    assert events[-2] == MessageDelta(FinishReason.TOOL_USE, Usage())


def test_text_then_tool_then_missing_id() -> None:
    events = run(
        frames(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Let me look."}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
            chunk(choices=False, usage={"prompt_tokens": 3, "completion_tokens": 4}),
        )
    )
    check_contract(events)
    assert events[1:6] == [
        BlockStart(0, TextBlock("")),
        TextDelta(0, "Let me look."),
        BlockStop(0),
        BlockStart(1, ToolUseBlock("call_1", "f", {})),
        ToolArgsDelta(1, "{}"),
    ]
    assert events[-2] == MessageDelta(FinishReason.TOOL_USE, Usage(input_tokens=3, output_tokens=4))


def test_other_choices_ignored() -> None:
    other = {"id": "c1", "choices": [{"index": 1, "delta": {"content": "other"}}]}
    events = run(frames(chunk({"content": "mine"}), other, chunk({}, "stop"), "[DONE]"))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["mine"]


def test_events_after_stop_are_ignored() -> None:
    parser = OpenAIStreamParser()
    for frame in frames(chunk({"content": "x"}), chunk({}, "stop"), "[DONE]"):
        parser.feed(frame)
    assert parser.feed(frames(chunk({"content": "late"}))[0]) == []
    assert parser.finish() == []


def test_tool_name_arriving_after_argument_fragments() -> None:
    # Some compatible servers send id and argument fragments first and function.name later.
    events = run(
        frames(
            chunk({"tool_calls": [{"index": 0, "id": "call_9", "function": {"arguments": "{"}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "sh", "arguments": '"a":1'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
            chunk({}, "tool_calls"),
            "[DONE]",
        )
    )
    check_contract(events)
    assert events[1] == BlockStart(0, ToolUseBlock("call_9", "sh", {}))
    args = "".join(e.partial_json for e in events if isinstance(e, ToolArgsDelta))
    assert orjson.loads(args) == {"a": 1}
    assert events[-2] == MessageDelta(FinishReason.TOOL_USE, Usage())


def test_tool_id_arriving_with_late_name() -> None:
    events = run(
        frames(
            chunk({"tool_calls": [{"index": 0, "function": {"name": "", "arguments": "{}"}}]}),
            chunk({"tool_calls": [{"index": 0, "id": "call_x", "function": {"name": "f"}}]}),
            chunk({}, "tool_calls"),
        )
    )
    check_contract(events)
    assert events[1:3] == [BlockStart(0, ToolUseBlock("call_x", "f", {})), ToolArgsDelta(0, "{}")]


def test_tool_never_named_still_delivered_at_finish() -> None:
    events = run(
        frames(
            chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
            "[DONE]",
        )
    )
    check_contract(events)
    assert events[1:3] == [BlockStart(0, ToolUseBlock("c", "", {})), ToolArgsDelta(0, "{}")]
    assert events[-2] == MessageDelta(FinishReason.TOOL_USE, Usage())


def _call(index: int, arguments: str, call_id: str = "", name: str = "") -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call["id"], call["type"], call["function"]["name"] = call_id, "function", name
    return chunk({"tool_calls": [call]})


def _tool_inputs(events: list[StreamEvent]) -> list[tuple[str, Any]]:
    starts = {e.index: e.block for e in events if isinstance(e, BlockStart)}
    inputs = []
    for index, block in sorted(starts.items()):
        assert isinstance(block, ToolUseBlock)
        args = "".join(
            e.partial_json for e in events if isinstance(e, ToolArgsDelta) and e.index == index
        )
        inputs.append((block.id, orjson.loads(args)))
    return inputs


def test_interleaved_parallel_tool_calls_keep_every_fragment() -> None:
    # Some servers interleave parallel calls' fragments: 0, 1, 0, 1, ...
    events = run(
        frames(
            _call(0, "", "call_a", "read"),
            _call(0, '{"path":'),
            _call(1, "", "call_b", "grep"),
            _call(1, '{"q":'),
            _call(0, '"a.py"}'),
            _call(1, '"x"}'),
            chunk({}, "tool_calls"),
            "[DONE]",
        )
    )
    check_contract(events)
    assert _tool_inputs(events) == [("call_a", {"path": "a.py"}), ("call_b", {"q": "x"})]
    assert events[-2] == MessageDelta(FinishReason.TOOL_USE, Usage())


def test_first_tool_call_streams_live_before_the_finish() -> None:
    parser = OpenAIStreamParser()
    live: list[StreamEvent] = []
    for frame in frames(chunk({"content": "hi"}), _call(0, '{"a"', "call_a", "f"), _call(0, ":1")):
        live.extend(parser.feed(frame))
    assert live[-2:] == [ToolArgsDelta(1, '{"a"'), ToolArgsDelta(1, ":1")]


def test_text_after_a_tool_call_is_kept_in_order() -> None:
    events = run(
        frames(
            _call(0, '{"a":', "call_a", "f"),
            chunk({"content": "note"}),
            _call(0, "1}"),
            chunk({}, "tool_calls"),
        )
    )
    check_contract(events)
    assert isinstance(events[1], BlockStart) and isinstance(events[1].block, ToolUseBlock)
    args = "".join(e.partial_json for e in events if isinstance(e, ToolArgsDelta))
    assert orjson.loads(args) == {"a": 1}
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["note"]
