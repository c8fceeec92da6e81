"""Typed stream events: what every provider stream parser emits and every dialect encoder consumes.

The sequence is always ``MessageStart``, then per content block ``BlockStart`` · deltas ·
``BlockStop`` (block ``index`` values count up from 0 and never interleave), then ``MessageDelta``
and ``MessageStop``. A stream that fails ends with ``StreamError`` instead of ``MessageStop``.
"""

from __future__ import annotations

from dataclasses import dataclass

from relaygate.core.errors import GatewayError
from relaygate.core.types import (
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
