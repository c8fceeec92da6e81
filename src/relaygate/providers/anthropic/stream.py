"""Anthropic Messages SSE -> neutral stream events: an explicit state machine over frames.

States: waiting for ``message_start``, streaming, done (after ``message_stop``, an ``error`` event
or a protocol violation). ``ping`` and unknown event types are ignored, as Anthropic's versioning
policy asks. Blocks the neutral model cannot hold (server-tool blocks) are skipped and the rest
re-numbered from 0. ``message_delta`` (cumulative usage, possibly several) is folded into one
``MessageDelta`` emitted with ``message_stop``.
"""

from __future__ import annotations

from collections.abc import Callable

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
from relaygate.core.json_depth import nests_too_deep, too_deep
from relaygate.core.sse import SSEFrame
from relaygate.core.types import (
    FinishReason,
    JSONObject,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.providers.anthropic.errors import stream_error
from relaygate.providers.anthropic.response import (
    MalformedError,
    finish_reason,
    malformed,
    parse_usage,
)

_WAITING, _STREAMING, _DONE = 0, 1, 2
Handler = Callable[["AnthropicStreamParser", JSONObject], list[StreamEvent]]


def _index(payload: JSONObject) -> int:
    index = payload.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise MalformedError(f"{payload.get('type')}.index")
    return index


def _str(block: JSONObject, key: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise MalformedError(f"{block.get('type')}.{key}")
    return value


def _opening(index: int, block: JSONObject) -> list[StreamEvent] | None:
    """``BlockStart`` plus deltas for any content the start already carries; None to skip."""
    kind = block.get("type")
    if kind == "text":
        text = _str(block, "text")
        opened: list[StreamEvent] = [BlockStart(index, TextBlock(""))]
        return [*opened, TextDelta(index, text)] if text else opened
    if kind == "thinking":
        events: list[StreamEvent] = [BlockStart(index, ThinkingBlock(""))]
        if block.get("thinking"):
            events.append(ThinkingDelta(index, _str(block, "thinking")))
        if block.get("signature"):
            events.append(SignatureDelta(index, _str(block, "signature")))
        return events
    if kind == "tool_use":
        start = BlockStart(index, ToolUseBlock(_str(block, "id"), _str(block, "name"), {}))
        arguments = block.get("input")
        if arguments and nests_too_deep(arguments):
            raise MalformedError(too_deep("content_block_start.content_block.input"))
        if arguments:
            return [start, ToolArgsDelta(index, orjson.dumps(arguments).decode())]
        return [start]
    if kind == "redacted_thinking":
        return [BlockStart(index, RedactedThinkingBlock(_str(block, "data")))]
    return None


def _delta(index: int, delta: object) -> StreamEvent | None:
    if not isinstance(delta, dict):
        raise MalformedError("content_block_delta.delta")
    kind = delta.get("type")
    if kind == "text_delta":
        return TextDelta(index, _str(delta, "text"))
    if kind == "input_json_delta":
        return ToolArgsDelta(index, _str(delta, "partial_json"))
    if kind == "thinking_delta":
        return ThinkingDelta(index, _str(delta, "thinking"))
    if kind == "signature_delta":
        return SignatureDelta(index, _str(delta, "signature"))
    return None


class AnthropicStreamParser:
    """One upstream stream's state; feed it frames in order, then call ``finish``."""

    __slots__ = ("_finish", "_indices", "_next", "_open", "_state", "_stop_sequence", "_usage")

    def __init__(self) -> None:
        self._state = _WAITING
        self._usage = Usage()
        self._indices: dict[int, int] = {}
        self._next = 0
        self._open = -1
        self._finish: FinishReason | None = None
        self._stop_sequence: str | None = None

    @property
    def usage(self) -> Usage:
        """``message_start``'s usage merged with the latest ``message_delta``'s."""
        return self._usage

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        """The neutral events one SSE frame yields (none once the stream is done)."""
        if self._state == _DONE or frame.event == "ping":
            return []
        try:
            payload = orjson.loads(frame.data)
        except orjson.JSONDecodeError:
            return self._fail(malformed(f"event {frame.event or ''} is not JSON"))
        if not isinstance(payload, dict):
            return self._fail(malformed(f"event {frame.event or ''} is not an object"))
        kind = payload.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return []
        if self._state == _WAITING and kind not in ("message_start", "error"):
            return self._fail(malformed(f"{kind} before message_start"))
        try:
            return handler(self, payload)
        except MalformedError as err:
            return self._fail(malformed(str(err)))

    def finish(self) -> list[StreamEvent]:
        """End of input: anything but a finished stream is an error, never a quiet end."""
        if self._state == _DONE:
            return []
        return self._fail(UpstreamError("upstream stream ended early", status=502, retryable=True))

    def _fail(self, err: UpstreamError, *, from_upstream: bool = False) -> list[StreamEvent]:
        self._state = _DONE
        return [StreamError(err, from_upstream)]

    def _message_start(self, payload: JSONObject) -> list[StreamEvent]:
        if self._state != _WAITING:
            return []
        message = payload.get("message")
        if not isinstance(message, dict):
            raise MalformedError("message_start.message")
        self._state = _STREAMING
        self._usage = parse_usage(message.get("usage"))
        return [MessageStart(_str(message, "id"), _str(message, "model"), self._usage)]

    def _close_open(self) -> list[StreamEvent]:
        if self._open < 0:
            return []
        index, self._open = self._open, -1
        return [BlockStop(index)]

    def _block_start(self, payload: JSONObject) -> list[StreamEvent]:
        upstream = _index(payload)
        block = payload.get("content_block")
        if not isinstance(block, dict):
            raise MalformedError("content_block_start.content_block")
        opening = _opening(self._next, block)
        if opening is None:
            return []
        events = self._close_open() + opening
        self._indices[upstream] = self._open = self._next
        self._next += 1
        return events

    def _block_delta(self, payload: JSONObject) -> list[StreamEvent]:
        index = self._indices.get(_index(payload), -1)
        if index < 0:  # a skipped block's delta
            return []
        if index != self._open:
            raise MalformedError("content_block_delta.index names a block that is not open")
        event = _delta(index, payload.get("delta"))
        return [event] if event is not None else []

    def _block_stop(self, payload: JSONObject) -> list[StreamEvent]:
        index = self._indices.get(_index(payload), -1)
        if index < 0 or index != self._open:
            return []
        return self._close_open()

    def _message_delta(self, payload: JSONObject) -> list[StreamEvent]:
        delta = payload.get("delta")
        if isinstance(delta, dict):
            if delta.get("stop_reason") is not None:
                self._finish = finish_reason(delta["stop_reason"])
            sequence = delta.get("stop_sequence")
            self._stop_sequence = sequence if isinstance(sequence, str) else self._stop_sequence
        self._usage = self._usage.merged(parse_usage(payload.get("usage")))
        return []

    def _message_stop(self, payload: JSONObject) -> list[StreamEvent]:
        self._state = _DONE
        finish = self._finish or FinishReason.END_TURN
        closing = MessageDelta(finish, self._usage, self._stop_sequence)
        return [*self._close_open(), closing, MessageStop()]

    def _error(self, payload: JSONObject) -> list[StreamEvent]:
        error = payload.get("error")
        if not isinstance(error, dict):
            return self._fail(stream_error("", ""), from_upstream=True)
        kind, message = error.get("type"), error.get("message")
        return self._fail(
            stream_error(
                kind if isinstance(kind, str) else "", message if isinstance(message, str) else ""
            ),
            from_upstream=True,
        )


_HANDLERS: dict[str, Handler] = {
    "message_start": AnthropicStreamParser._message_start,
    "content_block_start": AnthropicStreamParser._block_start,
    "content_block_delta": AnthropicStreamParser._block_delta,
    "content_block_stop": AnthropicStreamParser._block_stop,
    "message_delta": AnthropicStreamParser._message_delta,
    "message_stop": AnthropicStreamParser._message_stop,
    "error": AnthropicStreamParser._error,
}
