"""Upstream JSON nested deeper than the gateway can serialize is a clean 502, never a 500.

orjson parses 1,024 levels but serializes only 254: an answer whose tool input nests 300 levels
parsed fine and then broke the caller's encoder. Every wire x every caller dialect, whole and
streamed: the provider parser refuses the answer as an upstream error the caller's dialect can
render (and the attempt loop records as ``upstream``).
"""

from __future__ import annotations

import orjson
import pytest

from relaygate.core.errors import UpstreamError
from relaygate.core.events import StreamError, StreamEvent
from relaygate.core.sse import SSEFrame
from relaygate.core.types import ChatRequest, Message, TextBlock
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.providers.anthropic import AnthropicProvider
from relaygate.providers.openai import OpenAIProvider

DIALECTS = {"openai": OpenAIDialect(), "anthropic": AnthropicDialect()}
PROVIDERS = {"openai": OpenAIProvider(), "anthropic": AnthropicProvider()}
PAIRS = [(wire, caller) for wire in PROVIDERS for caller in DIALECTS]
DEEP = 300
DEEP_JSON = '{"a":' + "[" * DEEP + "]" * DEEP + "}"  # parses (orjson reads 1,024 levels)


def whole_body(wire: str) -> bytes:
    if wire == "openai":
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": DEEP_JSON},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        return orjson.dumps({"id": "c1", "model": "m", "choices": [choice]})
    block = '{"type":"tool_use","id":"toolu_1","name":"f","input":' + DEEP_JSON + "}"
    return (
        '{"id":"msg_1","type":"message","role":"assistant","model":"m","content":['
        + block
        + '],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}'
    ).encode()


def stream_frames(wire: str) -> list[SSEFrame]:
    if wire == "openai":
        call = '{"index":0,"id":"call_1","function":{"name":"f","arguments":' + DEEP_JSON + "}}"
        delta = '{"role":"assistant","tool_calls":[' + call + "]}"
        chunk = '{"id":"c1","model":"m","choices":[{"index":0,"delta":' + delta + "}]}"
        return [SSEFrame(None, chunk)]
    start = {
        "type": "message_start",
        "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 1}},
    }
    block = '{"type":"tool_use","id":"toolu_1","name":"f","input":' + DEEP_JSON + "}"
    opening = '{"type":"content_block_start","index":0,"content_block":' + block + "}"
    return [
        SSEFrame("message_start", orjson.dumps(start).decode()),
        SSEFrame("content_block_start", opening),
    ]


def request_for(caller: str, stream: bool) -> ChatRequest:
    return ChatRequest(
        dialect="openai" if caller == "openai" else "anthropic",
        model="m",
        messages=(Message("user", (TextBlock("hi"),)),),
        stream=stream,
    )


@pytest.mark.parametrize(("wire", "caller"), PAIRS)
def test_a_whole_answer_nested_too_deep_is_a_502_in_the_callers_dialect(
    wire: str, caller: str
) -> None:
    # What relay.whole does: parse, then encode for a caller of another dialect.
    try:
        parsed = PROVIDERS[wire].parse_response(whole_body(wire))
        if wire != caller:
            DIALECTS[caller].encode_response(parsed)
    except UpstreamError as err:
        refused = err
    else:
        pytest.fail("a 300-level-deep tool input was accepted")
    assert refused.status == 502 and refused.kind == "upstream"
    assert "nested more than" in refused.message
    body = orjson.loads(DIALECTS[caller].encode_error(refused, "req-1"))
    assert "nested more than" in orjson.dumps(body).decode()


@pytest.mark.parametrize(("wire", "caller"), PAIRS)
def test_a_streamed_answer_nested_too_deep_ends_with_an_error_event(wire: str, caller: str) -> None:
    parser = PROVIDERS[wire].stream_parser()
    events: list[StreamEvent] = []
    for frame in stream_frames(wire):
        events += parser.feed(frame)
    errors = [e for e in events if isinstance(e, StreamError)]
    assert len(errors) == 1 and errors[0].error.status == 502
    assert not errors[0].from_upstream  # the gateway must send the caller its error event
    assert "nested more than" in errors[0].error.message
    encoder = DIALECTS[caller].stream_encoder(request_for(caller, stream=True))
    wire_bytes = b"".join(encoder.feed(event) for event in events)
    assert b"nested more than" in wire_bytes
