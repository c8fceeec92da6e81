"""Neutral answers -> Anthropic Messages wire: the JSON body and the SSE event stream."""

from __future__ import annotations

import secrets

import orjson

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
from relaygate.core.types import (
    ChatResponse,
    ContentBlock,
    FinishReason,
    JSONObject,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.dialects.anthropic.errors import error_payload

STOP_REASONS: dict[FinishReason, str] = {
    FinishReason.END_TURN: "end_turn",
    FinishReason.MAX_TOKENS: "max_tokens",
    FinishReason.STOP_SEQUENCE: "stop_sequence",
    FinishReason.TOOL_USE: "tool_use",
    FinishReason.CONTENT_FILTER: "refusal",
    FinishReason.PAUSE_TURN: "pause_turn",
}


def message_id(upstream_id: str) -> str:
    """Anthropic ids start with ``msg_``; other upstreams' ids get the prefix."""
    if upstream_id.startswith("msg_"):
        return upstream_id
    return "msg_" + (upstream_id or secrets.token_hex(12))


def usage_wire(usage: Usage) -> JSONObject:
    """The full ``usage`` object of a message (``input_tokens`` excludes cache reads and writes)."""
    wire: JSONObject = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }
    if usage.reasoning_tokens:
        wire["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return wire


def block_wire(block: ContentBlock) -> JSONObject | None:
    """One response content block; images and tool results never appear in an answer."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ThinkingBlock):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature or ""}
    if isinstance(block, RedactedThinkingBlock):
        return {"type": "redacted_thinking", "data": block.data}
    return None


def encode_response(resp: ChatResponse) -> bytes:
    """The body of a non-streamed ``/v1/messages`` answer."""
    content = [wire for wire in map(block_wire, resp.content) if wire is not None]
    return orjson.dumps(
        {
            "id": message_id(resp.id),
            "type": "message",
            "role": "assistant",
            "model": resp.model,
            "content": content,
            "stop_reason": STOP_REASONS[resp.finish_reason],
            "stop_sequence": resp.stop_sequence,
            "usage": usage_wire(resp.usage),
        }
    )


def encode_count_tokens(n: int) -> bytes:
    """The body of a ``/v1/messages/count_tokens`` answer."""
    return orjson.dumps({"input_tokens": n})


def _frame(event: bytes, payload: JSONObject) -> bytes:
    return b"event: " + event + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _delta(index: int, delta: JSONObject) -> bytes:
    payload = {"type": "content_block_delta", "index": index, "delta": delta}
    return _frame(b"content_block_delta", payload)


class AnthropicStreamEncoder:
    """Neutral stream events -> Anthropic SSE, holding the event order Claude Code relies on.

    Exactly one ``message_start`` (synthesised if content arrives first); block indices count up
    from 0 in the order blocks open, whatever the producer numbered them; a block still open is
    closed before the next opens or the message ends; deltas only go to a block of their kind (a
    text or thinking delta for another block opens a new block of the right kind); a tool use
    that got no argument fragments gets ``{}`` so clients parse a valid input; ``message_delta``
    is synthesised if missing. A ``StreamError`` becomes an ``error`` event and ends the stream.
    """

    __slots__ = (
        "_args_sent",
        "_done",
        "_model",
        "_next",
        "_open",
        "_open_in",
        "_open_kind",
        "_saw_delta",
        "_saw_tool",
        "_started",
    )

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._done = False
        self._open = -1
        self._open_in = -1
        self._open_kind = ""
        self._args_sent = False
        self._next = 0
        self._saw_tool = False
        self._saw_delta = False

    def feed(self, event: StreamEvent) -> bytes:
        """The SSE bytes for one event (often empty); nothing at all once the stream ended."""
        if self._done:
            return b""
        if isinstance(event, TextDelta):
            return self._text(event)
        if isinstance(event, ToolArgsDelta):
            return self._args(event)
        if isinstance(event, ThinkingDelta | SignatureDelta):
            return self._thinking(event)
        if isinstance(event, BlockStart):
            return self._block_start(event)
        if isinstance(event, BlockStop):
            return self._close() if event.index == self._open_in else b""
        if isinstance(event, MessageStart):
            return b"" if self._started else self._message_start(event)
        if isinstance(event, MessageDelta):
            return self._message_delta(event)
        if isinstance(event, MessageStop):
            return self._message_stop()
        self._done = True
        return _frame(b"error", error_payload(event.error))

    def _message_start(self, event: MessageStart) -> bytes:
        self._started = True
        message: JSONObject = {
            "id": message_id(event.id),
            "type": "message",
            "role": "assistant",
            "model": event.model or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_wire(event.usage),
        }
        return _frame(b"message_start", {"type": "message_start", "message": message})

    def _ensure_started(self) -> bytes:
        if self._started:
            return b""
        return self._message_start(MessageStart("", self._model, Usage()))

    def _open_block(self, in_index: int, kind: str, wire: JSONObject) -> bytes:
        out = self._ensure_started() + self._close()
        self._open, self._open_in, self._open_kind = self._next, in_index, kind
        self._next += 1
        self._args_sent = False
        payload = {"type": "content_block_start", "index": self._open, "content_block": wire}
        return out + _frame(b"content_block_start", payload)

    def _block_start(self, event: BlockStart) -> bytes:
        block = event.block
        wire = block_wire(block)
        if isinstance(block, TextBlock):
            out = self._open_block(event.index, "text", {"type": "text", "text": ""})
            return out + (self._text(TextDelta(event.index, block.text)) if block.text else b"")
        if isinstance(block, ThinkingBlock):
            out = self._open_block(
                event.index, "thinking", {"type": "thinking", "thinking": "", "signature": ""}
            )
            if block.thinking:
                out += self._thinking(ThinkingDelta(event.index, block.thinking))
            if block.signature:
                out += self._thinking(SignatureDelta(event.index, block.signature))
            return out
        if isinstance(block, ToolUseBlock):
            self._saw_tool = True
            out = self._open_block(event.index, "tool_use", {**(wire or {}), "input": {}})
            if block.input:
                out += self._args(ToolArgsDelta(event.index, orjson.dumps(block.input).decode()))
            return out
        return self._open_block(event.index, "redacted_thinking", wire or {})

    def _text(self, event: TextDelta) -> bytes:
        out = b""
        if self._open_in != event.index or self._open_kind != "text":
            out = self._open_block(event.index, "text", {"type": "text", "text": ""})
        return out + _delta(self._open, {"type": "text_delta", "text": event.text})

    def _thinking(self, event: ThinkingDelta | SignatureDelta) -> bytes:
        out = b""
        if self._open_in != event.index or self._open_kind != "thinking":
            if isinstance(event, SignatureDelta):
                return b""
            wire: JSONObject = {"type": "thinking", "thinking": "", "signature": ""}
            out = self._open_block(event.index, "thinking", wire)
        if isinstance(event, ThinkingDelta):
            delta = {"type": "thinking_delta", "thinking": event.thinking}
        else:
            delta = {"type": "signature_delta", "signature": event.signature}
        return out + _delta(self._open, delta)

    def _args(self, event: ToolArgsDelta) -> bytes:
        if self._open_in != event.index or self._open_kind != "tool_use" or not event.partial_json:
            return b""
        self._args_sent = True
        delta = {"type": "input_json_delta", "partial_json": event.partial_json}
        return _delta(self._open, delta)

    def _close(self) -> bytes:
        if self._open < 0:
            return b""
        out = b""
        if self._open_kind == "tool_use" and not self._args_sent:
            out = _delta(self._open, {"type": "input_json_delta", "partial_json": "{}"})
        out += _frame(b"content_block_stop", {"type": "content_block_stop", "index": self._open})
        self._open, self._open_in, self._open_kind = -1, -1, ""
        return out

    def _message_delta(self, event: MessageDelta) -> bytes:
        out = self._ensure_started() + self._close()
        self._saw_delta = True
        usage = event.usage
        wire: JSONObject = {"output_tokens": usage.output_tokens}
        # message_delta usage is cumulative; a zero here would overwrite message_start's count.
        if usage.input_tokens:
            wire["input_tokens"] = usage.input_tokens
        if usage.cache_write_tokens:
            wire["cache_creation_input_tokens"] = usage.cache_write_tokens
        if usage.cache_read_tokens:
            wire["cache_read_input_tokens"] = usage.cache_read_tokens
        if usage.reasoning_tokens:
            wire["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
        delta = {
            "stop_reason": STOP_REASONS[event.finish_reason],
            "stop_sequence": event.stop_sequence,
        }
        return out + _frame(
            b"message_delta", {"type": "message_delta", "delta": delta, "usage": wire}
        )

    def _message_stop(self) -> bytes:
        out = self._ensure_started() + self._close()
        if not self._saw_delta:
            reason = FinishReason.TOOL_USE if self._saw_tool else FinishReason.END_TURN
            out += self._message_delta(MessageDelta(reason, Usage()))
        self._done = True
        return out + _frame(b"message_stop", {"type": "message_stop"})
