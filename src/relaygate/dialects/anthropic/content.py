"""Anthropic message content (wire) -> neutral messages and content blocks.

Known block types are validated field by field. A plain-text ``document`` becomes text (its title
first), so a translated request loses nothing of it. Block types the neutral model has no room for
(PDF documents, ``search_result``, server-tool results, ...) are skipped here, not rejected: they
stay in ``ChatRequest.raw`` and reach a same-dialect upstream unchanged; a translated request
goes without them. Only clearly malformed blocks (not an object, no string ``type``, a known type
with fields of the wrong type) raise ``InvalidRequestError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relaygate.core.errors import InvalidRequestError
from relaygate.core.types import (
    ContentBlock,
    ImageBlock,
    JSONObject,
    Message,
    RedactedThinkingBlock,
    Role,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)

_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system"}


def invalid(path: str, problem: str) -> InvalidRequestError:
    """An ``InvalidRequestError`` whose message starts with the field path."""
    return InvalidRequestError(f"{path}: {problem}", param=path)


def expect_str(block: JSONObject, key: str, path: str) -> str:
    """``block[key]``, which must be a string."""
    value = block.get(key)
    if not isinstance(value, str):
        raise invalid(f"{path}.{key}", "expected a string")
    return value


def cache_control(block: JSONObject, path: str) -> JSONObject | None:
    """A block's ``cache_control`` object, kept as given."""
    value = block.get("cache_control")
    if value is None or isinstance(value, dict):
        return value
    raise invalid(f"{path}.cache_control", "expected an object")


def decode_messages(value: object) -> tuple[Message, ...]:
    """``messages``: roles user, assistant and system (Claude Code sends system turns in order)."""
    if not isinstance(value, list):
        raise invalid("messages", "expected a list of messages")
    return tuple(_message(item, f"messages[{i}]") for i, item in enumerate(value))


def _message(item: object, path: str) -> Message:
    if not isinstance(item, dict):
        raise invalid(path, "expected a message object")
    given = item.get("role")
    role = _ROLES.get(given) if isinstance(given, str) else None
    if role is None:
        raise invalid(f"{path}.role", "expected 'user', 'assistant' or 'system'")
    return Message(role, decode_content(item.get("content"), f"{path}.content"))


def decode_content(content: object, path: str) -> tuple[ContentBlock, ...]:
    """A string or a list of content blocks."""
    if isinstance(content, str):
        return (TextBlock(content),) if content else ()
    if not isinstance(content, list):
        raise invalid(path, "expected a string or a list of content blocks")
    blocks: list[ContentBlock] = []
    for i, item in enumerate(content):
        block = _block(item, f"{path}[{i}]")
        if block is not None:
            blocks.append(block)
    return tuple(blocks)


def _block(item: object, path: str) -> ContentBlock | None:
    if not isinstance(item, dict):
        raise invalid(path, "expected a content block object")
    kind = item.get("type")
    if not isinstance(kind, str):
        raise invalid(f"{path}.type", "expected a string")
    decoder = _DECODERS.get(kind)
    return decoder(item, path) if decoder is not None else None


def _text(block: JSONObject, path: str) -> TextBlock:
    return TextBlock(expect_str(block, "text", path), cache_control(block, path))


def _image(block: JSONObject, path: str) -> ImageBlock | None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{path}.source", "expected an object")
    kind = source.get("type")
    if kind == "base64":
        spath = f"{path}.source"
        return ImageBlock(
            media_type=expect_str(source, "media_type", spath),
            data=expect_str(source, "data", spath),
        )
    if kind == "url":
        return ImageBlock(url=expect_str(source, "url", f"{path}.source"))
    return None


def _document(block: JSONObject, path: str) -> TextBlock | None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{path}.source", "expected an object")
    if source.get("type") != "text":
        return None
    text = expect_str(source, "data", f"{path}.source")
    title = block.get("title")
    if isinstance(title, str) and title:
        text = f"{title}\n\n{text}"
    return TextBlock(text, cache_control(block, path))


def _tool_use(block: JSONObject, path: str) -> ToolUseBlock:
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise invalid(f"{path}.input", "expected an object")
    return ToolUseBlock(expect_str(block, "id", path), expect_str(block, "name", path), arguments)


def _tool_result(block: JSONObject, path: str) -> ToolResultBlock:
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise invalid(f"{path}.is_error", "expected a boolean")
    content = block.get("content")
    parts: tuple[TextBlock | ImageBlock, ...] = ()
    if content is not None:
        decoded = decode_content(content, f"{path}.content")
        parts = tuple(b for b in decoded if isinstance(b, TextBlock | ImageBlock))
    return ToolResultBlock(
        tool_use_id=expect_str(block, "tool_use_id", path),
        content=parts,
        is_error=bool(is_error),
        cache_control=cache_control(block, path),
    )


def _thinking(block: JSONObject, path: str) -> ThinkingBlock:
    signature = block.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise invalid(f"{path}.signature", "expected a string")
    return ThinkingBlock(expect_str(block, "thinking", path), signature)


def _redacted(block: JSONObject, path: str) -> RedactedThinkingBlock:
    return RedactedThinkingBlock(expect_str(block, "data", path))


_DECODERS: dict[str, Callable[[dict[str, Any], str], ContentBlock | None]] = {
    "text": _text,
    "image": _image,
    "document": _document,
    "tool_use": _tool_use,
    "tool_result": _tool_result,
    "thinking": _thinking,
    "redacted_thinking": _redacted,
}
