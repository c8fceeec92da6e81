"""Anthropic Messages answer (wire) -> ``ChatResponse``, and the pieces the stream parser shares.

Block types the neutral model cannot hold (server-tool calls and results, ...) are skipped: a
same-dialect caller gets the upstream bytes unchanged anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import orjson

from relaygate.core.errors import UpstreamError
from relaygate.core.json_depth import nests_too_deep, too_deep
from relaygate.core.types import (
    TOKEN_COUNT_LIMIT,
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

T = TypeVar("T")

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": FinishReason.END_TURN,
    "max_tokens": FinishReason.MAX_TOKENS,
    "model_context_window_exceeded": FinishReason.MAX_TOKENS,
    "stop_sequence": FinishReason.STOP_SEQUENCE,
    "tool_use": FinishReason.TOOL_USE,
    "refusal": FinishReason.CONTENT_FILTER,
    "pause_turn": FinishReason.PAUSE_TURN,
}


class MalformedError(ValueError):
    """The upstream's JSON does not have the documented shape."""


def malformed(what: str) -> UpstreamError:
    """A 2xx answer this adapter cannot read: worth another attempt."""
    return UpstreamError(
        f"upstream returned a malformed response: {what}", status=502, retryable=True
    )


def finish_reason(value: object) -> FinishReason:
    """Unknown or missing reasons read as ``end_turn``."""
    if isinstance(value, str):
        return FINISH_REASONS.get(value, FinishReason.END_TURN)
    return FinishReason.END_TURN


def _count(usage: JSONObject, key: str) -> int:
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedError(f"usage.{key}")
    return max(0, min(value, TOKEN_COUNT_LIMIT))


def parse_usage(usage: object) -> Usage:
    """Anthropic ``usage``: ``input_tokens`` excludes cache reads and writes, as in ``Usage``."""
    if usage is None:
        return Usage()
    if not isinstance(usage, dict):
        raise MalformedError("usage")
    details = usage.get("output_tokens_details")
    writes = _count(usage, "cache_creation_input_tokens")
    one_hour = 0
    by_ttl = usage.get("cache_creation")
    if by_ttl is not None:
        if not isinstance(by_ttl, dict):
            raise MalformedError("usage.cache_creation")
        one_hour = _count(by_ttl, "ephemeral_1h_input_tokens")
        writes = max(writes, _count(by_ttl, "ephemeral_5m_input_tokens") + one_hour)
    return Usage(
        input_tokens=_count(usage, "input_tokens"),
        output_tokens=_count(usage, "output_tokens"),
        cache_read_tokens=_count(usage, "cache_read_input_tokens"),
        cache_write_tokens=writes,
        reasoning_tokens=_count(details, "thinking_tokens") if isinstance(details, dict) else 0,
        cache_write_1h_tokens=one_hour,
    )


def _str(block: JSONObject, key: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise MalformedError(f"{block.get('type')}.{key}")
    return value


def parse_block(block: object) -> ContentBlock | None:
    """One answer content block; None for types the neutral model does not hold."""
    if not isinstance(block, dict):
        raise MalformedError("content block")
    kind = block.get("type")
    if kind == "text":
        return TextBlock(_str(block, "text"))
    if kind == "tool_use":
        arguments = block.get("input")
        if not isinstance(arguments, dict):
            raise MalformedError("tool_use.input")
        if nests_too_deep(arguments):
            raise MalformedError(too_deep("tool_use.input"))
        return ToolUseBlock(_str(block, "id"), _str(block, "name"), arguments)
    if kind == "thinking":
        signature = block.get("signature")
        return ThinkingBlock(
            _str(block, "thinking"), signature if isinstance(signature, str) else None
        )
    if kind == "redacted_thinking":
        return RedactedThinkingBlock(_str(block, "data"))
    return None


def _response(data: object) -> ChatResponse:
    data, blocks, id_, model, usage = _checked(data)
    stop_sequence = data.get("stop_sequence")
    return ChatResponse(
        id=id_,
        model=model,
        content=tuple(blocks),
        finish_reason=finish_reason(data.get("stop_reason")),
        usage=usage,
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
    )


def _usage(data: object) -> Usage:
    return _checked(data)[4]


def _checked(
    data: object,
) -> tuple[JSONObject, list[ContentBlock], str, str, Usage]:
    """What every answer must have, read and checked (``MalformedError`` otherwise): the
    object, its content blocks, id, model and usage."""
    if not isinstance(data, dict):
        raise MalformedError("not an object")
    content = data.get("content")
    if not isinstance(content, list):
        raise MalformedError("content")
    blocks = [b for b in map(parse_block, content) if b is not None]
    return data, blocks, _str(data, "id"), _str(data, "model"), parse_usage(data.get("usage"))


def parse_response(body: bytes) -> ChatResponse:
    """A 2xx body; anything that is not a Messages answer is a retryable 502."""
    return _read(body, _response)


def answer_usage(body: bytes) -> Usage:
    """``parse_response(body).usage``, raising as it would, without building the answer: what a
    same-dialect relay, which passes the upstream's bytes on, needs of them."""
    return _read(body, _usage)


def _read(body: bytes, read: Callable[[object], T]) -> T:
    try:
        return read(orjson.loads(body))
    except orjson.JSONDecodeError:
        raise malformed("not JSON") from None
    except MalformedError as err:
        raise malformed(str(err)) from None


def parse_count_tokens(body: bytes) -> int:
    """``{"input_tokens": n}`` -> n."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise malformed("not JSON") from None
    count = data.get("input_tokens") if isinstance(data, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise malformed("input_tokens")
    return count
