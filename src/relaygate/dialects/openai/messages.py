"""Decode the ``messages`` array of an OpenAI chat request into neutral messages.

* ``system`` and ``developer`` messages, wherever they stand, are collected into the request's
  system blocks (Anthropic upstreams take one top-level system prompt; same-dialect relays send
  the raw body, so the original order is never lost on the way to an OpenAI upstream).
* An assistant's ``tool_calls`` become ``ToolUseBlock`` blocks after its text.
* ``role: tool`` messages become ``ToolResultBlock`` blocks in a user message; a run of consecutive
  tool messages shares one user message.
* Tool-call ``arguments`` that are not a JSON object are kept as ``{"_raw": "<the string>"}`` so the
  model still sees what it wrote; an empty string means ``{}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core.errors import InvalidRequestError, clip
from relaygate.core.json_depth import check_depth
from relaygate.core.types import (
    ContentBlock,
    ImageBlock,
    JSONObject,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)


def decode_messages(value: Any) -> tuple[tuple[Message, ...], tuple[TextBlock, ...]]:
    """``(messages, system blocks)`` from the wire ``messages`` value."""
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(
            "messages: expected a non-empty array of messages", param="messages"
        )
    messages: list[Message] = []
    system: list[TextBlock] = []
    pending_results: list[ContentBlock] = []
    for i, item in enumerate(value):
        path = f"messages[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequestError(f"{path}: expected an object", param=path)
        role = item.get("role")
        if role == "tool":
            pending_results.append(_tool_result(item, path))
            continue
        if pending_results:
            messages.append(Message("user", tuple(pending_results)))
            pending_results = []
        if role in ("system", "developer"):
            system.extend(_text_only(item.get("content"), f"{path}.content"))
        elif role == "user":
            messages.append(Message("user", _user_content(item.get("content"), path)))
        elif role == "assistant":
            messages.append(Message("assistant", _assistant_content(item, path)))
        else:
            raise InvalidRequestError(
                f"{path}.role: expected one of 'system', 'developer', 'user', 'assistant', "
                f"'tool', got {clip(repr(role))}",
                param=f"{path}.role",
            )
    if pending_results:
        messages.append(Message("user", tuple(pending_results)))
    return tuple(messages), tuple(system)


def parse_arguments(arguments: str) -> JSONObject:
    """Tool-call arguments as an object; see the module docstring for the non-object case."""
    if not arguments:
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    return parsed if isinstance(parsed, dict) else {"_raw": arguments}


def _text_only(content: Any, path: str) -> list[TextBlock]:
    if isinstance(content, str):
        return [TextBlock(content)]
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{path}: expected a string or an array of text parts", param=path
        )
    return [_text_part(part, f"{path}[{j}]", "'text'") for j, part in enumerate(content)]


def _user_content(content: Any, path: str) -> tuple[ContentBlock, ...]:
    path = f"{path}.content"
    if isinstance(content, str):
        return (TextBlock(content),)
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{path}: expected a string or an array of content parts", param=path
        )
    return tuple(_user_part(part, f"{path}[{j}]") for j, part in enumerate(content))


def _user_part(part: Any, path: str) -> TextBlock | ImageBlock:
    if isinstance(part, dict) and part.get("type") == "image_url":
        return _image(part.get("image_url"), f"{path}.image_url")
    return _text_part(part, path, "'text', 'image_url'")


def _text_part(part: Any, path: str, allowed: str) -> TextBlock:
    if not isinstance(part, dict):
        raise InvalidRequestError(f"{path}: expected a content part object", param=path)
    kind = part.get("type")
    if kind == "text" or kind == "refusal":
        text = part.get(kind)
        if not isinstance(text, str):
            raise InvalidRequestError(f"{path}.{kind}: expected a string", param=f"{path}.{kind}")
        return TextBlock(text)
    raise InvalidRequestError(
        f"{path}.type: expected {allowed}, got {clip(repr(kind))} "
        "(other part types are not supported)",
        param=f"{path}.type",
    )


def _image(value: Any, path: str) -> ImageBlock:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise InvalidRequestError(f"{path}.url: expected a string", param=f"{path}.url")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise InvalidRequestError(
                f"{path}.url: a data URL must look like data:<media type>;base64,<data>",
                param=f"{path}.url",
            )
        return ImageBlock(media_type=media_type, data=data)
    if url.startswith(("https://", "http://")):
        return ImageBlock(url=url)
    raise InvalidRequestError(
        f"{path}.url: expected an http(s) URL or a base64 data URL", param=f"{path}.url"
    )


def _assistant_content(item: dict[str, Any], path: str) -> tuple[ContentBlock, ...]:
    content = item.get("content")
    blocks: list[ContentBlock] = []
    if isinstance(content, str):
        if content:
            blocks.append(TextBlock(content))
    elif isinstance(content, list):
        blocks.extend(_text_only(content, f"{path}.content"))
    elif content is not None:
        raise InvalidRequestError(
            f"{path}.content: expected a string, an array of text parts or null",
            param=f"{path}.content",
        )
    refusal = item.get("refusal")
    if isinstance(refusal, str) and refusal and not blocks:
        blocks.append(TextBlock(refusal))
    tool_calls = item.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise InvalidRequestError(
                f"{path}.tool_calls: expected an array", param=f"{path}.tool_calls"
            )
        for k, call in enumerate(tool_calls):
            blocks.append(_tool_call(call, f"{path}.tool_calls[{k}]"))
    return tuple(blocks)


def _tool_call(call: Any, path: str) -> ToolUseBlock:
    if not isinstance(call, dict):
        raise InvalidRequestError(f"{path}: expected an object", param=path)
    if call.get("type", "function") != "function":
        raise InvalidRequestError(
            f"{path}.type: expected 'function', got {clip(repr(call.get('type')))}",
            param=f"{path}.type",
        )
    call_id = call.get("id")
    function = call.get("function")
    if not isinstance(call_id, str):
        raise InvalidRequestError(f"{path}.id: expected a string", param=f"{path}.id")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequestError(
            f"{path}.function.name: expected a string", param=f"{path}.function.name"
        )
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        raise InvalidRequestError(
            f"{path}.function.arguments: expected a JSON string",
            param=f"{path}.function.arguments",
        )
    tool_input = parse_arguments(arguments)
    check_depth(tool_input, f"{path}.function.arguments")  # a string in the body, parsed here
    return ToolUseBlock(id=call_id, name=function["name"], input=tool_input)


def _tool_result(item: dict[str, Any], path: str) -> ToolResultBlock:
    call_id = item.get("tool_call_id")
    if not isinstance(call_id, str):
        raise InvalidRequestError(
            f"{path}.tool_call_id: expected a string", param=f"{path}.tool_call_id"
        )
    content = item.get("content")
    blocks = () if content is None else tuple(_text_only(content, f"{path}.content"))
    return ToolResultBlock(tool_use_id=call_id, content=blocks)
