"""Anthropic Messages request (wire) -> ``ChatRequest``.

Plain dict access and explicit checks (no pydantic on the hot path). The parsed JSON is kept
whole in ``ChatRequest.raw`` so a same-dialect upstream receives every field the client sent,
including ones this decoder does not know (``context_management``, ``output_config``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from relaygate.core.json_depth import check_body_depth
from relaygate.core.types import (
    ChatRequest,
    JSONObject,
    ResponseFormat,
    TextBlock,
    Tool,
    ToolChoice,
)
from relaygate.dialects.anthropic.content import cache_control, decode_messages, expect_str, invalid
from relaygate.dialects.base import RequestHead

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
_TOOL_KEYS = frozenset({"name", "description", "input_schema"})
_CHOICES = frozenset({"auto", "any", "tool", "none"})


def decode_request(
    body: bytes, headers: Mapping[str, str], *, count_only: bool = False
) -> ChatRequest:
    """Decode ``POST /v1/messages`` (or, with ``count_only``, ``/v1/messages/count_tokens``,
    where ``max_tokens`` is neither required nor used)."""
    return decode_head(read_head(body), headers, count_only=count_only)


def read_head(body: bytes) -> RequestHead:
    """Parse the body as far as routing needs: a JSON object of sane depth with a model."""
    data = _load(body)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "expected a non-empty string")
    metadata = data.get("metadata")
    user = metadata.get("user_id") if type(metadata) is dict else None
    return RequestHead(model, data.get("stream") is True, user if type(user) is str else None, data)


def decode_head(
    head: RequestHead, headers: Mapping[str, str], *, count_only: bool = False
) -> ChatRequest:
    """The rest of the validation, on a body ``read_head`` parsed."""
    data = head.raw
    metadata = _object(data, "metadata")
    user = metadata.get("user_id") if metadata else None
    return ChatRequest(
        dialect="anthropic",
        model=head.model,
        messages=decode_messages(data.get("messages")),
        system=_system(data.get("system")),
        max_tokens=None if count_only else _max_tokens(data.get("max_tokens")),
        temperature=_number(data, "temperature"),
        top_p=_number(data, "top_p"),
        top_k=_top_k(data.get("top_k")),
        stop=_stop_sequences(data.get("stop_sequences")),
        stream=_stream(data.get("stream")),
        include_usage=True,
        tools=_tools(data.get("tools")),
        tool_choice=_tool_choice(data.get("tool_choice")),
        response_format=_response_format(data),
        thinking=_object(data, "thinking"),
        metadata=metadata,
        user=user if isinstance(user, str) else None,
        raw=data,
        extra_headers={k: headers[k] for k in FORWARDED_HEADERS if k in headers},
    )


def _load(body: bytes) -> JSONObject:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid("body", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid("body", "expected a JSON object")
    check_body_depth(body, data)
    return data


def _max_tokens(value: object) -> int:
    if value is None:
        raise invalid("max_tokens", "field required")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise invalid("max_tokens", "expected an integer greater than 0")
    return value


def _number(data: JSONObject, key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(key, "expected a number")
    return float(value)


def _top_k(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("top_k", "expected an integer")
    return value


def _stream(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid("stream", "expected a boolean")
    return value


def _object(data: JSONObject, key: str) -> JSONObject | None:
    value = data.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise invalid(key, "expected an object")


def _stop_sequences(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise invalid("stop_sequences", "expected a list of strings")
    return tuple(value)


def _system(value: object) -> tuple[TextBlock, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (TextBlock(value),) if value else ()
    if not isinstance(value, list):
        raise invalid("system", "expected a string or a list of text blocks")
    blocks: list[TextBlock] = []
    for i, item in enumerate(value):
        path = f"system[{i}]"
        if not isinstance(item, dict) or item.get("type") != "text":
            raise invalid(path, "expected a text block")
        blocks.append(TextBlock(expect_str(item, "text", path), cache_control(item, path)))
    return tuple(blocks)


def _tools(value: object) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("tools", "expected a list of tools")
    return tuple(_tool(item, f"tools[{i}]") for i, item in enumerate(value))


def _tool(item: object, path: str) -> Tool:
    """A client tool, or a server tool (``type`` other than ``custom``) with no input schema."""
    if not isinstance(item, dict):
        raise invalid(path, "expected a tool object")
    name = expect_str(item, "name", path)
    description = item.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid(f"{path}.description", "expected a string")
    schema: Any = item.get("input_schema")
    if schema is None and item.get("type") not in (None, "custom"):
        schema = {}
    if not isinstance(schema, dict):
        raise invalid(f"{path}.input_schema", "expected a JSON Schema object")
    extra = {k: v for k, v in item.items() if k not in _TOOL_KEYS}
    return Tool(name, description, schema, extra)


def _tool_choice(value: object) -> ToolChoice | None:
    if value is None:
        return None
    # A JSON array or object as ``type`` is unhashable: test for a string before the set lookup.
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise invalid("tool_choice", "expected an object with type auto, any, tool or none")
    kind = value["type"]
    if kind not in _CHOICES:
        raise invalid("tool_choice", "expected an object with type auto, any, tool or none")
    name = expect_str(value, "name", "tool_choice") if kind == "tool" else None
    disable = value.get("disable_parallel_tool_use", False)
    if not isinstance(disable, bool):
        raise invalid("tool_choice.disable_parallel_tool_use", "expected a boolean")
    return ToolChoice(kind, name, disable)


def _response_format(data: JSONObject) -> ResponseFormat | None:
    """Structured outputs (``output_config.format`` or the older ``output_format``)."""
    config = data.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        fmt = data.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        if isinstance(schema, dict):
            return ResponseFormat("json_schema", schema=schema, strict=True)
    return None
