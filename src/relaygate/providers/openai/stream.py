"""An explicit state machine from OpenAI ``chat.completion.chunk`` frames to neutral events.

States: WAITING (no chunk yet) -> STREAMING (content) -> FINISHING (a ``finish_reason`` came; the
usage chunk or ``[DONE]`` may follow) -> DONE. The answer ends (``MessageDelta`` + ``MessageStop``)
on ``[DONE]``, on usage seen after the finish reason (some compatible servers put usage in the
finish chunk and never send ``[DONE]``), or at ``finish()`` once a finish reason came. Any other
end is a ``StreamError``.

Blocks open lazily: reasoning -> thinking block, content -> text block, each new tool-call
``index`` -> tool-use block (held back, with its argument fragments, until its ``name`` has come);
opening one closes the one before, so block indices count up from 0 without interleaving. An
argument fragment for an already closed tool call (servers that interleave parallel calls) is still
sent, with that call's block index.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson

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
from relaygate.core.sse import SSEFrame
from relaygate.core.types import FinishReason, TextBlock, ThinkingBlock, ToolUseBlock, Usage
from relaygate.providers.openai.errors import malformed_response, stream_error
from relaygate.providers.openai.response import finish_reason, parse_usage, reasoning_text


class _State(enum.Enum):
    WAITING = 1
    STREAMING = 2
    FINISHING = 3
    DONE = 4


_TEXT = -1
_THINKING = -2


class OpenAIStreamParser:
    """One OpenAI-compatible SSE stream -> neutral events; a fresh instance per stream."""

    __slots__ = (
        "_finish",
        "_last_tool",
        "_next_index",
        "_open",
        "_open_index",
        "_pending",
        "_state",
        "_tools",
        "_usage",
    )

    def __init__(self) -> None:
        self._state = _State.WAITING
        self._usage = Usage()
        self._finish: FinishReason | None = None
        self._next_index = 0
        # What is open: None, _TEXT, _THINKING, or the upstream index of a tool call.
        self._open: int | None = None
        self._open_index = 0
        self._tools: dict[int, int] = {}  # upstream tool-call index -> block index
        self._last_tool: tuple[int, str] | None = None  # (upstream index, call id)
        # Tool calls seen before their name: upstream index -> (id, name, arguments so far).
        self._pending: dict[int, tuple[str, str, str]] = {}

    @property
    def usage(self) -> Usage:
        """Usage reported so far (zero until the upstream reports it)."""
        return self._usage

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        """Events for one SSE frame."""
        if self._state is _State.DONE:
            return []
        data = frame.data
        if data == "[DONE]":
            return self._on_done()
        if not data:
            return []
        try:
            chunk: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._fail(malformed_response())
        if not isinstance(chunk, dict):
            return self._fail(malformed_response())
        if chunk.get("error") or frame.event == "error":
            return self._fail(stream_error(chunk), from_upstream=True)
        return self._on_chunk(chunk)

    def finish(self) -> list[StreamEvent]:
        """End of input: complete the answer if it finished, else report the early end."""
        if self._state is _State.DONE:
            return []
        if self._state is _State.FINISHING:
            events: list[StreamEvent] = []
            self._end(events)
            return events
        return self._fail(
            UpstreamError(
                "upstream stream ended early", status=502, upstream_status=200, retryable=True
            )
        )

    def _on_done(self) -> list[StreamEvent]:
        if self._state is _State.WAITING:
            return self.finish()
        events: list[StreamEvent] = []
        if self._finish is None:
            self._flush_pending(events)
            self._close(events)
            self._finish = finish_reason(None, bool(self._tools))
        self._end(events)
        return events

    def _on_chunk(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._state is _State.WAITING:
            events.append(MessageStart(_str(chunk.get("id")), _str(chunk.get("model")), Usage()))
            self._state = _State.STREAMING
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    self._on_choice(choice, events)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = parse_usage(usage)
            if self._state is _State.FINISHING:
                self._end(events)
        return events

    def _on_choice(self, choice: dict[str, Any], events: list[StreamEvent]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = reasoning_text(delta)
            if reasoning:
                events.append(ThinkingDelta(self._ensure(_THINKING, events), reasoning))
            text = delta.get("content") or delta.get("refusal")
            if isinstance(text, str):
                events.append(TextDelta(self._ensure(_TEXT, events), text))
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        self._on_tool_call(call, events)
        reason = choice.get("finish_reason")
        if reason is not None and self._state is _State.STREAMING:
            self._flush_pending(events)
            self._close(events)
            self._finish = finish_reason(reason, bool(self._tools))
            self._state = _State.FINISHING

    def _on_tool_call(self, call: dict[str, Any], events: list[StreamEvent]) -> None:
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        key = self._tool_key(call)
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send the arguments as an object
            arguments = orjson.dumps(arguments).decode()
        fragment = arguments if isinstance(arguments, str) else ""
        index = self._tools.get(key)
        if index is not None:
            if fragment:
                events.append(ToolArgsDelta(index, fragment))
            return
        # Some servers name the call only in a later chunk: hold it until the name comes.
        call_id, name, held = self._pending.pop(key, ("", "", ""))
        given_id = call.get("id")
        call_id = given_id if isinstance(given_id, str) and given_id else call_id
        name = _str(function.get("name")) or name
        self._last_tool = (key, call_id)
        if name:
            self._open_tool(key, call_id, name, held + fragment, events)
        else:
            self._pending[key] = (call_id, name, held + fragment)

    def _open_tool(
        self, key: int, call_id: str, name: str, arguments: str, events: list[StreamEvent]
    ) -> None:
        self._close(events)
        index = self._next_index
        self._next_index += 1
        events.append(BlockStart(index, ToolUseBlock(call_id or f"call_{index}", name, {})))
        self._tools[key] = index
        self._open, self._open_index = key, index
        if arguments:
            events.append(ToolArgsDelta(index, arguments))

    def _flush_pending(self, events: list[StreamEvent]) -> None:
        """Deliver calls whose name never came, rather than lose them."""
        for key, (call_id, name, arguments) in sorted(self._pending.items()):
            self._open_tool(key, call_id, name, arguments, events)
        self._pending.clear()

    def _tool_key(self, call: dict[str, Any]) -> int:
        key = call.get("index")
        if type(key) is int and key >= 0:
            return key
        # No index (some compatible servers): a new id starts a new call, else continue the last.
        call_id = call.get("id")
        last = self._last_tool
        if last is not None and (not call_id or call_id == last[1]):
            return last[0]
        return max((*self._tools, *self._pending), default=-1) + 1

    def _ensure(self, kind: int, events: list[StreamEvent]) -> int:
        if self._open == kind:
            return self._open_index
        self._close(events)
        index = self._next_index
        self._next_index += 1
        block = TextBlock("") if kind == _TEXT else ThinkingBlock("")
        events.append(BlockStart(index, block))
        self._open, self._open_index = kind, index
        return index

    def _close(self, events: list[StreamEvent]) -> None:
        if self._open is not None:
            events.append(BlockStop(self._open_index))
            self._open = None

    def _end(self, events: list[StreamEvent]) -> None:
        self._close(events)
        events.append(MessageDelta(self._finish or FinishReason.END_TURN, self._usage))
        events.append(MessageStop())
        self._state = _State.DONE

    def _fail(self, error: UpstreamError, *, from_upstream: bool = False) -> list[StreamEvent]:
        self._state = _State.DONE
        return [StreamError(error, from_upstream)]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
