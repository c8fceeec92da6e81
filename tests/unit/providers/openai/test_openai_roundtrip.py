"""Property: what the OpenAI dialect encodes, the OpenAI provider parses back unchanged.

Random answers (thinking, text, parallel tool calls, usage) are turned into neutral stream events
with random fragmentation, encoded by ``OpenAIStreamEncoder``, cut into random byte chunks, decoded
by ``SSEDecoder`` and parsed by ``OpenAIStreamParser``; the reassembled answer must equal the
original. The non-streaming pair (``encode_response`` / ``parse_response``) gets the same check.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core.events import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
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
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.dialects.openai import OpenAIDialect
from relaygate.providers.openai import OpenAIProvider

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
TOOL_CALLS = st.lists(
    st.builds(
        ToolUseBlock,
        id=st.from_regex(r"call_[A-Za-z0-9]{1,24}", fullmatch=True),
        name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,20}", fullmatch=True),
        input=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4),
    ),
    max_size=3,
)
USAGES = st.builds(
    Usage,
    input_tokens=st.integers(0, 10**6),
    output_tokens=st.integers(0, 10**6),
    cache_read_tokens=st.integers(0, 10**6),
    reasoning_tokens=st.integers(0, 10**5),
)  # cache writes have no OpenAI field: they fold into prompt_tokens


@st.composite
def answers(draw: st.DrawFn) -> ChatResponse:
    content: list[ContentBlock] = []
    if draw(st.booleans()):
        content.append(ThinkingBlock(draw(st.text(min_size=1))))
    if draw(st.booleans()):
        content.append(TextBlock(draw(st.text(min_size=1))))
    tools = draw(TOOL_CALLS)
    content.extend(tools)
    finish = (
        FinishReason.TOOL_USE
        if tools
        else draw(
            st.sampled_from(
                [FinishReason.END_TURN, FinishReason.MAX_TOKENS, FinishReason.CONTENT_FILTER]
            )
        )
    )
    return ChatResponse(
        id=draw(st.from_regex(r"chatcmpl-[A-Za-z0-9]{1,30}", fullmatch=True)),
        model=draw(st.sampled_from(["gpt-4o", "deepseek-chat", "claude-sonnet-4-5"])),
        content=tuple(content),
        finish_reason=finish,
        usage=draw(USAGES),
    )


def split(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=5)))
    bounds = [0, *[c for c in cuts if c < len(text)], len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def streams(draw: st.DrawFn) -> tuple[ChatResponse, list[StreamEvent], bool, list[int]]:
    answer = draw(answers())
    events: list[StreamEvent] = [MessageStart(answer.id, answer.model, Usage())]
    for index, block in enumerate(answer.content):
        if isinstance(block, ThinkingBlock):
            events.append(BlockStart(index, ThinkingBlock("")))
            events.extend(ThinkingDelta(index, p) for p in split(draw, block.thinking))
        elif isinstance(block, TextBlock):
            events.append(BlockStart(index, TextBlock("")))
            events.extend(TextDelta(index, p) for p in split(draw, block.text))
        elif isinstance(block, ToolUseBlock):
            events.append(BlockStart(index, ToolUseBlock(block.id, block.name, {})))
            arguments = orjson.dumps(block.input).decode()
            events.extend(ToolArgsDelta(index, p) for p in split(draw, arguments))
        events.append(BlockStop(index))
    events += [MessageDelta(answer.finish_reason, answer.usage), MessageStop()]
    cuts = draw(st.lists(st.integers(1, 4000), max_size=8))
    return answer, events, draw(st.booleans()), cuts


def reassemble(events: list[StreamEvent]) -> tuple[MessageStart, list[ContentBlock], MessageDelta]:
    start, delta = events[0], events[-2]
    assert isinstance(start, MessageStart)
    assert isinstance(delta, MessageDelta)
    assert isinstance(events[-1], MessageStop)
    blocks: dict[int, Any] = {}
    parts: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, BlockStart):
            blocks[event.index] = event.block
            parts[event.index] = []
        elif isinstance(event, TextDelta):
            parts[event.index].append(event.text)
        elif isinstance(event, ThinkingDelta):
            parts[event.index].append(event.thinking)
        elif isinstance(event, ToolArgsDelta):
            parts[event.index].append(event.partial_json)
    content: list[ContentBlock] = []
    for index in sorted(blocks):
        block, joined = blocks[index], "".join(parts[index])
        if isinstance(block, TextBlock):
            content.append(TextBlock(joined))
        elif isinstance(block, ThinkingBlock):
            content.append(ThinkingBlock(joined))
        else:
            content.append(ToolUseBlock(block.id, block.name, orjson.loads(joined)))
    return start, content, delta


@settings(max_examples=300, deadline=None)
@given(streams())
def test_stream_round_trip(case: tuple[ChatResponse, list[StreamEvent], bool, list[int]]) -> None:
    answer, events, include_usage, cuts = case
    req = ChatRequest(
        dialect="openai", model=answer.model, messages=(), stream=True, include_usage=include_usage
    )
    encoder = OpenAIDialect(clock=lambda: 1.0).stream_encoder(req)
    wire = b"".join(encoder.feed(e) for e in events)
    assert wire.endswith(b"data: [DONE]\n\n")

    decoder, parser = SSEDecoder(), OpenAIProvider().stream_parser()
    parsed: list[StreamEvent] = []
    position = 0
    for cut in [*cuts, len(wire)]:
        for frame in decoder.feed(wire[position : position + cut]):
            parsed.extend(parser.feed(frame))
        position += cut
    for frame in decoder.feed(wire[position:]) + decoder.finish():
        parsed.extend(parser.feed(frame))
    parsed.extend(parser.finish())

    start, content, delta = reassemble(parsed)
    assert (start.id, start.model) == (answer.id, answer.model)
    assert content == list(answer.content)
    assert delta.finish_reason is answer.finish_reason
    expected_usage = answer.usage if include_usage else Usage()
    assert delta.usage == expected_usage
    assert parser.usage == expected_usage


@settings(max_examples=200, deadline=None)
@given(answers())
def test_response_round_trip(answer: ChatResponse) -> None:
    wire = OpenAIDialect(clock=lambda: 1.0).encode_response(answer)
    parsed = OpenAIProvider().parse_response(wire)
    assert parsed == answer
