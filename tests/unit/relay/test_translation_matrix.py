"""Every upstream wire x every caller dialect: a streamed answer survives the round trip.

Upstream bytes are made by the wire's own encoder, parsed by the gateway's provider parser,
re-encoded for the caller, then parsed again the way a client would; the reassembled content,
finish reason and usage must equal what the upstream sent.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core.events import (
    BlockStart,
    MessageDelta,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from relaygate.core.sse import SSEDecoder
from relaygate.core.types import (
    ChatRequest,
    ChatResponse,
    ContentBlock,
    FinishReason,
    JSONObject,
    Message,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.dialects.openai.encode import usage_object
from relaygate.mock.engine import reply_events
from relaygate.providers.anthropic import AnthropicProvider
from relaygate.providers.openai import OpenAIProvider

DIALECTS = {"openai": OpenAIDialect(), "anthropic": AnthropicDialect()}
PROVIDERS = {"openai": OpenAIProvider(), "anthropic": AnthropicProvider()}
PAIRS = [(wire, caller) for wire in DIALECTS for caller in DIALECTS]

words = st.text(alphabet=st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=60)
json_values = st.one_of(st.integers(-1000, 1000), st.booleans(), words, st.none())
tool_inputs = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=6), json_values, max_size=4)
tool_names = st.text("abcdefghijklmnop_", min_size=1, max_size=12)


@st.composite
def answers(draw: st.DrawFn, with_thinking: bool) -> ChatResponse:
    blocks: list[ContentBlock] = []
    if with_thinking and draw(st.booleans()):
        blocks.append(ThinkingBlock(draw(words), signature=draw(st.text("abcdef0123", min_size=8))))
    if draw(st.booleans()):
        blocks.append(TextBlock(draw(words)))
    calls = draw(st.lists(st.tuples(tool_names, tool_inputs), max_size=3))
    for n, (name, args) in enumerate(calls):
        blocks.append(ToolUseBlock(f"call_{n}_x", name, args))
    if not blocks:
        blocks.append(TextBlock(draw(words)))
    usage = Usage(
        input_tokens=draw(st.integers(1, 10_000)),
        output_tokens=draw(st.integers(1, 10_000)),
        cache_read_tokens=draw(st.integers(0, 5_000)),
    )
    finish = FinishReason.TOOL_USE if calls else FinishReason.END_TURN
    return ChatResponse("msg_test", "m", tuple(blocks), finish, usage)


def request_for(dialect: str) -> ChatRequest:
    return ChatRequest(
        dialect="openai" if dialect == "openai" else "anthropic",
        model="m",
        messages=(Message("user", (TextBlock("hi"),)),),
        stream=True,
        include_usage=True,
    )


def parse_sse(provider: str, wire: bytes) -> list[StreamEvent]:
    decoder, parser = SSEDecoder(), PROVIDERS[provider].stream_parser()
    events = [e for frame in decoder.feed(wire) for e in parser.feed(frame)]
    events += [e for frame in decoder.finish() for e in parser.feed(frame)]
    return events + parser.finish()


def encode_sse(dialect: str, events: list[StreamEvent]) -> bytes:
    encoder = DIALECTS[dialect].stream_encoder(request_for(dialect))
    return b"".join(encoder.feed(event) for event in events)


def assemble(events: list[StreamEvent]) -> tuple[list[ContentBlock], FinishReason, Usage]:
    starts: dict[int, ContentBlock] = {}
    texts: dict[int, list[str]] = {}
    signatures: dict[int, str] = {}
    finish, usage = FinishReason.END_TURN, Usage()
    for event in events:
        if isinstance(event, BlockStart):
            starts[event.index] = event.block
            texts[event.index] = []
        elif isinstance(event, TextDelta | ThinkingDelta | ToolArgsDelta):
            texts[event.index].append(_delta_text(event))
        elif isinstance(event, SignatureDelta):
            signatures[event.index] = signatures.get(event.index, "") + event.signature
        elif isinstance(event, MessageDelta):
            finish, usage = event.finish_reason, event.usage
    blocks = [_finished(starts[i], "".join(texts[i]), signatures.get(i)) for i in sorted(starts)]
    return blocks, finish, usage


def _delta_text(event: TextDelta | ThinkingDelta | ToolArgsDelta) -> str:
    if isinstance(event, TextDelta):
        return event.text
    if isinstance(event, ThinkingDelta):
        return event.thinking
    return event.partial_json


def _finished(start: ContentBlock, text: str, signature: str | None) -> ContentBlock:
    if isinstance(start, ToolUseBlock):
        return ToolUseBlock(start.id, start.name, orjson.loads(text) if text else {})
    if isinstance(start, ThinkingBlock):
        return ThinkingBlock(text, signature or start.signature)
    return TextBlock(text)


@pytest.mark.parametrize(("wire", "caller"), PAIRS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_stream_round_trip(wire: str, caller: str, data: st.DataObject) -> None:
    with_thinking = wire == caller == "anthropic"
    answer = data.draw(answers(with_thinking))
    upstream_bytes = encode_sse(wire, reply_events(answer))
    gateway_events = parse_sse(wire, upstream_bytes)
    caller_bytes = encode_sse(caller, gateway_events)
    blocks, finish, usage = assemble(parse_sse(caller, caller_bytes))

    assert [b for b in blocks if not _empty_text(b)] == list(answer.content)
    assert finish == answer.finish_reason
    assert usage.output_tokens == answer.usage.output_tokens
    assert usage.prompt_total == answer.usage.prompt_total
    assert usage.cache_read_tokens == answer.usage.cache_read_tokens


@st.composite
def interleaved_openai_stream(draw: st.DrawFn, answer: ChatResponse) -> bytes:
    """OpenAI wire bytes whose tool calls' argument fragments interleave in a drawn order."""
    chunks: list[JSONObject] = [{"role": "assistant", "content": ""}]
    chunks += [{"content": b.text} for b in answer.content if isinstance(b, TextBlock)]
    calls = [b for b in answer.content if isinstance(b, ToolUseBlock)]
    pending: list[list[JSONObject]] = []
    for n, call in enumerate(calls):
        args = orjson.dumps(call.input).decode()
        cuts = sorted(draw(st.sets(st.integers(1, max(len(args) - 1, 1)), max_size=4)))
        pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]
        head = {"index": n, "id": call.id, "type": "function"}
        steps = [{**head, "function": {"name": call.name, "arguments": ""}}]
        steps += [{"index": n, "function": {"arguments": p}} for p in pieces if p]
        pending.append(steps)
    while any(pending):
        # Calls start in index order (as every server numbers them); their fragments interleave.
        started = next((n for n, steps in enumerate(pending) if steps and "id" in steps[0]), None)
        live = [s for n, s in enumerate(pending) if s and (started is None or n <= started)]
        steps = live[draw(st.integers(0, len(live) - 1))]
        chunks.append({"tool_calls": [steps.pop(0)]})
    reason = "tool_calls" if calls else "stop"
    frames = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in chunks]
    frames.append({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    frames.append({"choices": [], "usage": usage_object(answer.usage)})
    head = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "model": "m"}
    wire = b"".join(b"data: " + orjson.dumps({**head, **f}) + b"\n\n" for f in frames)
    return wire + b"data: [DONE]\n\n"


@pytest.mark.parametrize("caller", list(DIALECTS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_interleaved_openai_tool_calls_round_trip(caller: str, data: st.DataObject) -> None:
    answer = data.draw(answers(with_thinking=False))
    text = "".join(b.text for b in answer.content if isinstance(b, TextBlock))
    calls = [b for b in answer.content if isinstance(b, ToolUseBlock)]
    gateway_events = parse_sse("openai", data.draw(interleaved_openai_stream(answer)))
    blocks, finish, usage = assemble(parse_sse(caller, encode_sse(caller, gateway_events)))

    assert "".join(b.text for b in blocks if isinstance(b, TextBlock)) == text
    assert [b for b in blocks if isinstance(b, ToolUseBlock)] == calls
    assert finish == answer.finish_reason
    assert usage.output_tokens == answer.usage.output_tokens


def _empty_text(block: ContentBlock) -> bool:
    return isinstance(block, TextBlock) and not block.text
