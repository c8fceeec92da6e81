"""Property: whatever the Anthropic stream encoder writes, the Anthropic stream parser reads back.

Random blocks (text, thinking with signature, tool use with arbitrary JSON arguments cut into
arbitrary fragments, redacted thinking) and usage go through the dialect's encoder, are cut into
random network chunks (splitting multi-byte characters too) and are parsed by the provider's
parser; the blocks and usage must match.
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
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from relaygate.core.sse import SSEDecoder
from relaygate.core.types import (
    ChatRequest,
    ContentBlock,
    FinishReason,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.providers.anthropic import AnthropicStreamParser

REQ = ChatRequest(dialect="anthropic", model="m", messages=())
counts = st.integers(min_value=0, max_value=2**31)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
blocks = st.one_of(
    st.builds(TextBlock, st.text()),
    st.builds(ThinkingBlock, st.text(), st.none() | st.text(min_size=1)),
    st.builds(
        ToolUseBlock,
        st.text(min_size=1),
        st.text(min_size=1),
        st.dictionaries(st.text(), json_values, max_size=5),
    ),
    st.builds(RedactedThinkingBlock, st.text(min_size=1)),
)


def split(data: st.DataObject, text: str) -> list[str]:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=6)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def block_events(data: st.DataObject, index: int, block: ContentBlock) -> list[StreamEvent]:
    if isinstance(block, TextBlock):
        pieces = split(data, block.text)
        return [BlockStart(index, TextBlock("")), *(TextDelta(index, p) for p in pieces)]
    if isinstance(block, ThinkingBlock):
        events: list[StreamEvent] = [BlockStart(index, ThinkingBlock(""))]
        events += [ThinkingDelta(index, p) for p in split(data, block.thinking)]
        if block.signature:
            events.append(SignatureDelta(index, block.signature))
        return events
    if isinstance(block, ToolUseBlock):
        arguments = orjson.dumps(block.input).decode() if block.input else ""
        pieces = split(data, arguments)
        start = BlockStart(index, ToolUseBlock(block.id, block.name, {}))
        return [start, *(ToolArgsDelta(index, p) for p in pieces)]
    assert isinstance(block, RedactedThinkingBlock)
    return [BlockStart(index, block)]


def rebuild(events: list[StreamEvent]) -> list[ContentBlock]:
    built: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, BlockStart):
            assert event.index == len(built)
            built.append({"block": event.block, "text": "", "signature": None})
        elif isinstance(event, TextDelta | ThinkingDelta | ToolArgsDelta):
            assert event.index == len(built) - 1
            part = (
                event.text
                if isinstance(event, TextDelta)
                else (event.thinking if isinstance(event, ThinkingDelta) else event.partial_json)
            )
            built[-1]["text"] += part
        elif isinstance(event, SignatureDelta):
            built[-1]["signature"] = event.signature
    out: list[ContentBlock] = []
    for item in built:
        block = item["block"]
        if isinstance(block, TextBlock):
            out.append(TextBlock(item["text"]))
        elif isinstance(block, ThinkingBlock):
            out.append(ThinkingBlock(item["text"], item["signature"]))
        elif isinstance(block, ToolUseBlock):
            out.append(ToolUseBlock(block.id, block.name, orjson.loads(item["text"] or "{}")))
        else:
            out.append(block)
    return out


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    content=st.lists(blocks, max_size=6),
    start=st.builds(Usage, counts, counts, counts, counts),
    final=st.builds(Usage, counts, counts, counts, counts, counts),
    reason=st.sampled_from(FinishReason),
    stop_sequence=st.none() | st.text(min_size=1),
)
def test_encode_then_parse_round_trips(
    data: st.DataObject,
    content: list[ContentBlock],
    start: Usage,
    final: Usage,
    reason: FinishReason,
    stop_sequence: str | None,
) -> None:
    events: list[StreamEvent] = [MessageStart("msg_x", "model-x", start)]
    for index, block in enumerate(content):
        events += [*block_events(data, index, block), BlockStop(index)]
    events += [MessageDelta(reason, final, stop_sequence), MessageStop()]

    encoder = AnthropicDialect().stream_encoder(REQ)
    wire = b"".join(encoder.feed(e) for e in events)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(wire)), max_size=8)))
    bounds = [0, *cuts, len(wire)]
    decoder, parser = SSEDecoder(), AnthropicStreamParser()
    parsed: list[StreamEvent] = []
    for a, b in itertools.pairwise(bounds):
        for frame in decoder.feed(wire[a:b]):
            parsed += parser.feed(frame)
    for frame in decoder.finish():
        parsed += parser.feed(frame)
    parsed += parser.finish()

    assert parsed[0] == MessageStart("msg_x", "model-x", start)
    assert rebuild(parsed) == content
    expected_usage = start.merged(final)
    assert parsed[-2:] == [MessageDelta(reason, expected_usage, stop_sequence), MessageStop()]
    assert parser.usage == expected_usage
