"""Stored turns as JSON: neutral messages with a type tag per content block.

Redis holds each turn as ``<tokens>|<opens-with-tool-result 0/1>|<json>`` so that the append
script trims with string matches, never decoding JSON. A stored entry that does not decode (a
corrupt value, an older layout) is skipped, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from relaygate.core.types import (
    ContentBlock,
    ImageBlock,
    Message,
    RedactedThinkingBlock,
    Role,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from relaygate.sessions.turns import Turn

logger = logging.getLogger("relaygate.sessions")
# System turns inside messages are stored too (the Anthropic dialect accepts them in order).
_ROLES: dict[object, Role] = {"system": "system", "user": "user", "assistant": "assistant"}


def block_json(block: ContentBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        out: dict[str, Any] = {"type": "text", "text": block.text}
        if block.cache_control is not None:
            out["cache_control"] = block.cache_control
        return out
    if isinstance(block, ImageBlock):
        return {
            "type": "image",
            "media_type": block.media_type,
            "data": block.data,
            "url": block.url,
        }
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResultBlock):
        return {
            "type": "tool_result",
            "tool_use_id": block.tool_use_id,
            "content": [block_json(b) for b in block.content],
            "is_error": block.is_error,
        }
    if isinstance(block, ThinkingBlock):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    return {"type": "redacted_thinking", "data": block.data}


def message_json(message: Message) -> dict[str, Any]:
    return {"role": message.role, "content": [block_json(b) for b in message.content]}


def _block(data: dict[str, Any]) -> ContentBlock:
    kind = data["type"]
    if kind == "text":
        return TextBlock(str(data["text"]), data.get("cache_control"))
    if kind == "image":
        return ImageBlock(data.get("media_type"), data.get("data"), data.get("url"))
    if kind == "tool_use":
        return ToolUseBlock(str(data["id"]), str(data["name"]), dict(data["input"]))
    if kind == "tool_result":
        content = tuple(_block(b) for b in data["content"])
        inner = tuple(b for b in content if isinstance(b, TextBlock | ImageBlock))
        return ToolResultBlock(str(data["tool_use_id"]), inner, bool(data.get("is_error")))
    if kind == "thinking":
        return ThinkingBlock(str(data["thinking"]), data.get("signature"))
    if kind == "redacted_thinking":
        return RedactedThinkingBlock(str(data["data"]))
    raise ValueError(f"unknown block type {kind!r}")


def _message(data: dict[str, Any]) -> Message:
    role = _ROLES.get(data["role"])
    if role is None:
        raise ValueError(f"unexpected role {data['role']!r}")
    return Message(role, tuple(_block(b) for b in data["content"]))


def encode_turn(turn: Turn) -> bytes:
    body = orjson.dumps([message_json(m) for m in turn.messages])
    flag = b"1" if turn.opens_with_tool_result else b"0"
    return b"%d|%s|%s" % (turn.tokens, flag, body)


def decode_turn(entry: bytes) -> Turn | None:
    """The stored turn, or None (logged) when the entry is not one."""
    try:
        tokens, _flag, body = entry.split(b"|", 2)
        messages = tuple(_message(m) for m in orjson.loads(body))
        return Turn(messages, int(tokens))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("skipped a session turn that does not decode: %s", exc)
        return None
