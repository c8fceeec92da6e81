"""What a cache entry holds: one whole answer in the neutral form, as compact JSON.

An answer is stored as a ``ChatResponse`` whatever shape it arrived in: a streamed answer is
folded back together (``AnswerBuilder``) and replays as the same events (``answer_events``), so a
streamed answer serves a later whole request and the reverse, in either dialect. Nothing of the
caller (key, request id, headers) is stored. ``decode_entry`` returns ``None`` for anything it
cannot read: a corrupt entry is a miss.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core.events import (
    BlockStart,
    MessageDelta,
    MessageStart,
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
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)

VERSION = 1


def encode_entry(resp: ChatResponse) -> bytes:
    return orjson.dumps(
        {
            "v": VERSION,
            "id": resp.id,
            "model": resp.model,
            "finish": resp.finish_reason.value,
            "stop_sequence": resp.stop_sequence,
            "usage": [
                resp.usage.input_tokens,
                resp.usage.output_tokens,
                resp.usage.cache_read_tokens,
                resp.usage.cache_write_tokens,
                resp.usage.reasoning_tokens,
                resp.usage.cache_write_1h_tokens,
            ],
            "content": [_block(b) for b in resp.content],
        }
    )


def decode_entry(raw: bytes) -> ChatResponse | None:
    try:
        data = orjson.loads(raw)
        if data["v"] != VERSION:
            return None
        usage = Usage(*(int(n) for n in data["usage"]))
        content = tuple(_unblock(b) for b in data["content"])
        stop = data["stop_sequence"]
        return ChatResponse(
            id=str(data["id"]),
            model=str(data["model"]),
            content=content,
            finish_reason=FinishReason(data["finish"]),
            usage=usage,
            stop_sequence=str(stop) if stop is not None else None,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
        return None


def _block(block: ContentBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"t": "text", "text": block.text}
    if isinstance(block, ToolUseBlock):
        return {"t": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ThinkingBlock):
        return {"t": "thinking", "thinking": block.thinking, "signature": block.signature}
    if isinstance(block, RedactedThinkingBlock):
        return {"t": "redacted_thinking", "data": block.data}
    raise ValueError(f"an answer holds no {type(block).__name__}")


def _unblock(data: dict[str, Any]) -> ContentBlock:
    kind = data["t"]
    if kind == "text":
        return TextBlock(str(data["text"]))
    if kind == "tool_use":
        if not isinstance(data["input"], dict):
            raise TypeError("tool input is not an object")
        return ToolUseBlock(str(data["id"]), str(data["name"]), data["input"])
    if kind == "thinking":
        signature = data["signature"]
        return ThinkingBlock(str(data["thinking"]), str(signature) if signature else None)
    if kind == "redacted_thinking":
        return RedactedThinkingBlock(str(data["data"]))
    raise ValueError(f"unknown block type {kind!r}")


class AnswerBuilder:
    """Folds a stream's events back into the whole answer they carried."""

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._usage = Usage()
        self._blocks: dict[int, ContentBlock] = {}
        self._parts: dict[int, list[str]] = {}
        self._signatures: dict[int, str] = {}
        self._end: MessageDelta | None = None

    def feed(self, event: StreamEvent) -> None:
        if isinstance(event, MessageStart):
            self._id, self._model, self._usage = event.id, event.model, event.usage
        elif isinstance(event, BlockStart):
            self._blocks[event.index] = event.block
            self._parts[event.index] = []
        elif isinstance(event, TextDelta):
            self._parts[event.index].append(event.text)
        elif isinstance(event, ToolArgsDelta):
            self._parts[event.index].append(event.partial_json)
        elif isinstance(event, ThinkingDelta):
            self._parts[event.index].append(event.thinking)
        elif isinstance(event, SignatureDelta):
            self._signatures[event.index] = event.signature
        elif isinstance(event, MessageDelta):
            self._end = event

    def build(self) -> ChatResponse | None:
        """The answer, or ``None`` when the stream never said how it ended (incomplete)."""
        end = self._end
        if end is None:
            return None
        content: list[ContentBlock] = []
        for index in sorted(self._blocks):
            block, text = self._blocks[index], "".join(self._parts[index])
            if isinstance(block, TextBlock):
                content.append(TextBlock(text))
            elif isinstance(block, ToolUseBlock):
                try:
                    args = orjson.loads(text) if text else {}
                except orjson.JSONDecodeError:
                    return None
                if not isinstance(args, dict):
                    return None
                content.append(ToolUseBlock(block.id, block.name, args))
            elif isinstance(block, ThinkingBlock):
                signature = self._signatures.get(index, block.signature)
                content.append(ThinkingBlock(text, signature))
            else:
                content.append(block)
        usage = self._usage.merged(end.usage)
        return ChatResponse(
            self._id, self._model, tuple(content), end.finish_reason, usage, end.stop_sequence
        )
