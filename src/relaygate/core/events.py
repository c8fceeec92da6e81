"""Typed stream events: what every provider stream parser emits and every dialect encoder consumes.

The sequence is always ``MessageStart``, then per content block ``BlockStart`` · deltas ·
``BlockStop`` (block ``index`` values count up from 0 and never interleave), then ``MessageDelta``
and ``MessageStop``. A stream that fails ends with ``StreamError`` instead of ``MessageStop``.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from relaygate.core.errors import GatewayError
from relaygate.core.types import (
    ChatResponse,
    FinishReason,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)


@dataclass(slots=True, frozen=True)
class MessageStart:
    id: str
    model: str
    usage: Usage


@dataclass(slots=True, frozen=True)
class BlockStart:
    """Opens block ``index``; text/thinking start empty, a tool use starts with ``input == {}``."""

    index: int
    block: TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock


@dataclass(slots=True, frozen=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True, frozen=True)
class ToolArgsDelta:
    """A fragment of the tool call's JSON arguments; the fragments concatenate to the full JSON."""

    index: int
    partial_json: str


@dataclass(slots=True, frozen=True)
class ThinkingDelta:
    index: int
    thinking: str


@dataclass(slots=True, frozen=True)
class SignatureDelta:
    index: int
    signature: str


@dataclass(slots=True, frozen=True)
class BlockStop:
    index: int


@dataclass(slots=True, frozen=True)
class MessageDelta:
    """The end of the content: why it stopped and the final usage."""

    finish_reason: FinishReason
    usage: Usage
    stop_sequence: str | None = None


@dataclass(slots=True, frozen=True)
class MessageStop:
    pass


@dataclass(slots=True, frozen=True)
class StreamError:
    """The stream failed after it began; encoders turn it into an in-dialect error event.

    ``from_upstream`` is True when the upstream itself sent an error event: a same-dialect relay
    has then already passed it to the caller and must not add another.
    """

    error: GatewayError
    from_upstream: bool = False


StreamEvent = (
    MessageStart
    | BlockStart
    | TextDelta
    | ToolArgsDelta
    | ThinkingDelta
    | SignatureDelta
    | BlockStop
    | MessageDelta
    | MessageStop
    | StreamError
)


def answer_events(resp: ChatResponse) -> list[StreamEvent]:
    """A whole answer as the stream that would have carried it: one delta per block."""
    start_usage = Usage(
        input_tokens=resp.usage.input_tokens,
        cache_read_tokens=resp.usage.cache_read_tokens,
        cache_write_tokens=resp.usage.cache_write_tokens,
    )
    events: list[StreamEvent] = [MessageStart(resp.id, resp.model, start_usage)]
    index = 0
    for block in resp.content:
        if isinstance(block, TextBlock):
            events += [BlockStart(index, TextBlock("")), TextDelta(index, block.text)]
        elif isinstance(block, ThinkingBlock):
            events += [BlockStart(index, ThinkingBlock("")), ThinkingDelta(index, block.thinking)]
            if block.signature:
                events.append(SignatureDelta(index, block.signature))
        elif isinstance(block, ToolUseBlock):
            events.append(BlockStart(index, ToolUseBlock(block.id, block.name, {})))
            events.append(ToolArgsDelta(index, orjson.dumps(block.input).decode()))
        elif isinstance(block, RedactedThinkingBlock):
            events.append(BlockStart(index, block))
        else:  # images and tool results never appear in an answer
            continue
        events.append(BlockStop(index))
        index += 1
    events.append(MessageDelta(resp.finish_reason, resp.usage, resp.stop_sequence))
    events.append(MessageStop())
    return events
