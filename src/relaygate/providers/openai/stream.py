"""An explicit state machine from OpenAI ``chat.completion.chunk`` frames to neutral events.

States: WAITING (no chunk yet) -> STREAMING (content) -> FINISHING (a ``finish_reason`` came; the
usage chunk or ``[DONE]`` may follow) -> DONE. The answer ends (``MessageDelta`` + ``MessageStop``)
on ``[DONE]``, on usage seen after the finish reason (some compatible servers put usage in the
finish chunk and never send ``[DONE]``), or at ``finish()`` once a finish reason came. Any other
end is a ``StreamError``.

Blocks open lazily: reasoning -> thinking block, content -> text block, each new tool-call
``index`` -> tool-use block; opening one closes the one before, so block indices count up from 0
without interleaving.

Parallel tool calls: some servers interleave the calls' argument fragments (0, 1, 0, 1, ...). An
Anthropic-shaped stream cannot: a block once stopped cannot be reopened, and OpenAI never says a
call is complete before ``finish_reason``. So the first tool-use block streams live and stays open
until the choice finishes, and whatever begins after it (further calls, text, reasoning) is held,
reassembled by call index, and emitted in order of first appearance when the choice finishes.
Text, reasoning and a single tool call (the common cases) still stream live; a later call's
fragments reach the caller at the finish instead of as they come, and none is ever dropped.
A call not yet named is held the same way until its name comes (or the finish).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
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
from relaygate.core.json_depth import nests_too_deep, too_deep
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
_TOOL = -3


@dataclass(slots=True)
class _Held:
    """A block held back until it may open: its kind, tool-call key, id, name and content."""

    kind: int
    key: int = -1
    call_id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


class OpenAIStreamParser:
    """One OpenAI-compatible SSE stream -> neutral events; a fresh instance per stream."""

    __slots__ = (
        "_finish",
        "_held",
        "_held_tools",
        "_last_tool",
        "_next_index",
        "_open",
        "_open_index",
        "_state",
        "_tool_keys",
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
        self._tool_keys: set[int] = set()  # upstream tool-call indices seen
        self._last_tool: tuple[int, str] | None = None  # (upstream index, call id)
        # Blocks held back (see the module docstring), in order of first appearance.
        self._held: list[_Held] = []
        self._held_tools: dict[int, _Held] = {}  # upstream tool-call index -> its held block

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
        try:
            return self._on_chunk(chunk)
        except UpstreamError as err:  # a chunk this parser cannot relay
            return self._fail(err)

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
            self._flush_held(events)
            self._finish = finish_reason(None, bool(self._tool_keys))
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
                self._on_content(_THINKING, reasoning, events)
            text = delta.get("content") or delta.get("refusal")
            if isinstance(text, str):
                self._on_content(_TEXT, text, events)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        self._on_tool_call(call, events)
        reason = choice.get("finish_reason")
        if reason is not None and self._state is _State.STREAMING:
            self._flush_held(events)
            self._finish = finish_reason(reason, bool(self._tool_keys))
            self._state = _State.FINISHING

    def _on_content(self, kind: int, text: str, events: list[StreamEvent]) -> None:
        if self._held or (self._open is not None and self._open >= 0):
            # A tool block is live (it may get more fragments) or blocks wait before this one.
            last = self._held[-1] if self._held else None
            if last is None or last.kind != kind:
                last = _Held(kind)
                self._held.append(last)
            last.parts.append(text)
            return
        index = self._ensure(kind, events)
        events.append(TextDelta(index, text) if kind == _TEXT else ThinkingDelta(index, text))

    def _on_tool_call(self, call: dict[str, Any], events: list[StreamEvent]) -> None:
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        key = self._tool_key(call)
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send the arguments as an object
            if nests_too_deep(arguments):
                raise malformed_response(too_deep("tool_calls.function.arguments"))
            arguments = orjson.dumps(arguments).decode()
        fragment = arguments if isinstance(arguments, str) else ""
        if key == self._open:
            if fragment:
                events.append(ToolArgsDelta(self._open_index, fragment))
            return
        held = self._held_tools.get(key)
        if held is None:
            held = self._held_tools[key] = _Held(_TOOL, key)
            self._held.append(held)
            self._tool_keys.add(key)
        given_id = call.get("id")
        if isinstance(given_id, str) and given_id:
            held.call_id = given_id
        held.name = _str(function.get("name")) or held.name
        if fragment:
            held.parts.append(fragment)
        self._last_tool = (key, held.call_id)
        first = self._held[0]
        if first.kind == _TOOL and first.name and (self._open is None or self._open < 0):
            # No tool block is live and this named call is next in line: it streams live.
            self._held.pop(0)
            del self._held_tools[first.key]
            self._open_held(first, events)

    def _open_held(self, held: _Held, events: list[StreamEvent]) -> int:
        """Open ``held`` as the next block with everything it gathered; returns its index."""
        self._close(events)
        index = self._next_index
        self._next_index += 1
        content = "".join(held.parts)
        if held.kind == _TOOL:
            call_id = held.call_id or f"call_{index}"
            events.append(BlockStart(index, ToolUseBlock(call_id, held.name, {})))
            if content:
                events.append(ToolArgsDelta(index, content))
        elif held.kind == _TEXT:
            events += [BlockStart(index, TextBlock("")), TextDelta(index, content)]
        else:
            events += [BlockStart(index, ThinkingBlock("")), ThinkingDelta(index, content)]
        self._open, self._open_index = (held.key if held.kind == _TOOL else held.kind), index
        return index

    def _flush_held(self, events: list[StreamEvent]) -> None:
        """The choice finished: close the live block, then deliver every held one in order."""
        for held in self._held:
            self._open_held(held, events)
        self._held.clear()
        self._held_tools.clear()
        self._close(events)

    def _tool_key(self, call: dict[str, Any]) -> int:
        key = call.get("index")
        if type(key) is int and key >= 0:
            return key
        # No index (some compatible servers): a new id starts a new call, else continue the last.
        call_id = call.get("id")
        last = self._last_tool
        if last is not None and (not call_id or call_id == last[1]):
            return last[0]
        return max(self._tool_keys, default=-1) + 1

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
