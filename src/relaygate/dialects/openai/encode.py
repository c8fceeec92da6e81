"""Neutral answers -> OpenAI Chat Completions wire JSON and SSE chunks.

Thinking text travels as ``reasoning_content`` (the field DeepSeek and vLLM use; the official
SDK keeps unknown fields); thinking signatures and redacted thinking have no OpenAI form: dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core.events import (
    BlockStart,
    MessageDelta,
    MessageStart,
    MessageStop,
    StreamError,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from relaygate.core.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.dialects.openai.errors import error_object

FINISH_REASONS: dict[FinishReason, str] = {
    FinishReason.END_TURN: "stop",
    FinishReason.STOP_SEQUENCE: "stop",
    FinishReason.PAUSE_TURN: "stop",
    FinishReason.MAX_TOKENS: "length",
    FinishReason.TOOL_USE: "tool_calls",
    FinishReason.CONTENT_FILTER: "content_filter",
}

DONE = b"data: [DONE]\n\n"


def usage_object(usage: Usage) -> dict[str, Any]:
    """OpenAI usage: ``prompt_tokens`` counts cached (and cache-written) prompt tokens too."""
    prompt = usage.prompt_total
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def encode_response(resp: ChatResponse, created: int) -> bytes:
    """A ``chat.completion`` object with one choice."""
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in resp.content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ThinkingBlock):
            thinking.append(block.thinking)
        elif isinstance(block, ToolUseBlock):
            tool_calls.append(_tool_call(block))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    body = {
        "id": resp.id,
        "object": "chat.completion",
        "created": created,
        "model": resp.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS[resp.finish_reason],
            }
        ],
        "usage": usage_object(resp.usage),
    }
    return orjson.dumps(body)


def _tool_call(block: ToolUseBlock) -> dict[str, Any]:
    return {
        "id": block.id,
        "type": "function",
        "function": {"name": block.name, "arguments": orjson.dumps(block.input).decode()},
    }


class OpenAIStreamEncoder:
    """Neutral stream events -> ``data: {chunk}\\n\\n`` frames, ending with ``data: [DONE]``.

    Tool calls are numbered 0, 1, ... in the order their blocks start, whatever the block indices.
    With ``include_usage`` every chunk carries ``"usage": null`` and a last chunk with empty
    ``choices`` carries the usage, as OpenAI does. A ``StreamError`` becomes a
    ``data: {"error": ...}`` frame, on which the official SDKs raise; nothing follows it.
    """

    __slots__ = ("_closed", "_created", "_head", "_include_usage", "_tail", "_tools", "_usage")

    def __init__(self, req: ChatRequest, created: int) -> None:
        self._include_usage = req.include_usage
        self._created = created
        self._head = b""
        self._tail = b',"usage":null}' if req.include_usage else b"}"
        self._tools: dict[int, int] = {}
        self._usage = Usage()
        self._closed = False

    def feed(self, event: StreamEvent) -> bytes:
        """The bytes to send for ``event`` (often none)."""
        if self._closed:
            return b""
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text}) if event.text else b""
        if isinstance(event, ToolArgsDelta):
            return self._args(event)
        if isinstance(event, ThinkingDelta):
            return self._chunk({"reasoning_content": event.thinking}) if event.thinking else b""
        if isinstance(event, BlockStart):
            return self._block_start(event)
        if isinstance(event, MessageStart):
            return self._start(event.id, event.model)
        if isinstance(event, MessageDelta):
            self._usage = event.usage
            return self._chunk({}, FINISH_REASONS[event.finish_reason])
        if isinstance(event, MessageStop):
            return self._stop()
        if isinstance(event, StreamError):
            self._closed = True
            return b"data: " + orjson.dumps({"error": error_object(event.error)}) + b"\n\n"
        return b""

    def _start(self, message_id: str, model: str) -> bytes:
        if self._head:
            return b""
        self._head = (
            b'{"id":'
            + orjson.dumps(message_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(self._created).encode()
            + b',"model":'
            + orjson.dumps(model)
        )
        return self._chunk({"role": "assistant", "content": ""})

    def _lazy_start(self) -> bytes:
        return b"" if self._head else self._start("chatcmpl-relaygate", "")

    def _block_start(self, event: BlockStart) -> bytes:
        block = event.block
        if isinstance(block, ToolUseBlock):
            ordinal = len(self._tools)
            self._tools[event.index] = ordinal
            arguments = orjson.dumps(block.input).decode() if block.input else ""
            call = {
                "index": ordinal,
                "id": block.id,
                "type": "function",
                "function": {"name": block.name, "arguments": arguments},
            }
            return self._chunk({"tool_calls": [call]})
        if isinstance(block, TextBlock) and block.text:
            return self._chunk({"content": block.text})
        if isinstance(block, ThinkingBlock) and block.thinking:
            return self._chunk({"reasoning_content": block.thinking})
        return self._lazy_start()

    def _args(self, event: ToolArgsDelta) -> bytes:
        ordinal = self._tools.get(event.index)
        if ordinal is None or not event.partial_json:
            return b""
        call = {"index": ordinal, "function": {"arguments": event.partial_json}}
        return self._chunk({"tool_calls": [call]})

    def _stop(self) -> bytes:
        self._closed = True
        prefix = self._lazy_start()
        if not self._include_usage:
            return prefix + DONE
        usage = orjson.dumps(usage_object(self._usage))
        return prefix + b"data: " + self._head + b',"choices":[],"usage":' + usage + b"}\n\n" + DONE

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        prefix = self._lazy_start()
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return (
            prefix
            + b"data: "
            + self._head
            + b',"choices":['
            + orjson.dumps(choice)
            + b"]"
            + self._tail
            + b"\n\n"
        )
