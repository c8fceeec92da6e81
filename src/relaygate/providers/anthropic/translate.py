"""A ``ChatRequest`` from another dialect -> an Anthropic Messages body.

Anthropic rejects ``role: system`` inside ``messages``, empty text blocks, thinking blocks without
a signature and consecutive turns of one role; so system turns join the top-level ``system``
list, empty text and unsigned thinking are dropped, and consecutive same-role turns are merged
(several OpenAI ``tool`` messages land in one user turn, tool results first as Anthropic asks).
A ``response_format`` becomes an added system instruction asking for JSON only (with the schema
for ``json_schema``); a ``json_schema`` also becomes Anthropic's native structured output
(``output_config.format``), which current models enforce.
"""

from __future__ import annotations

import orjson

from relaygate.core.errors import InvalidRequestError
from relaygate.core.types import (
    ChatRequest,
    ContentBlock,
    ImageBlock,
    JSONObject,
    Message,
    RedactedThinkingBlock,
    ResponseFormat,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)

JSON_ONLY = (
    "Respond with a single valid JSON object and nothing else: no prose, no Markdown, "
    "no code fences."
)


def translate(req: ChatRequest, model: str, max_tokens: int) -> JSONObject:
    """The wire body for ``req`` asked of ``model``."""
    body: JSONObject = {"model": model, "max_tokens": max_tokens}
    system = system_blocks(req)
    if system:
        body["system"] = system
    body["messages"] = messages_wire(req.messages)
    # Anthropic rejects whitespace-only stop sequences that OpenAI callers often send ("\n").
    stop = [s for s in req.stop if s.strip()]
    if stop:
        body["stop_sequences"] = stop
    for key, value in (
        # OpenAI's range is 0..2, Anthropic's 0..1.
        ("temperature", None if req.temperature is None else min(req.temperature, 1.0)),
        ("top_p", req.top_p),
        ("top_k", req.top_k),
    ):
        if value is not None:
            body[key] = value
    if req.tools:
        body["tools"] = tools_wire(req)
        if req.tool_choice is not None:
            body["tool_choice"] = tool_choice_wire(req.tool_choice)
    if req.thinking is not None:
        body["thinking"] = req.thinking
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.schema is not None:
        body["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema}}
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body


def system_blocks(req: ChatRequest) -> list[JSONObject]:
    """Top-level system blocks, then system turns in order, then any JSON-only instruction."""
    blocks = [_text(b) for b in req.system if b.text]
    for message in req.messages:
        if message.role == "system":
            blocks += [_text(b) for b in message.content if isinstance(b, TextBlock) and b.text]
    if req.response_format is not None:
        blocks.append({"type": "text", "text": _format_instruction(req.response_format)})
    return blocks


def _format_instruction(fmt: ResponseFormat) -> str:
    if fmt.type == "json_schema" and fmt.schema is not None:
        schema = orjson.dumps(fmt.schema).decode()
        return f"{JSON_ONLY} The JSON must conform to this JSON Schema:\n{schema}"
    return JSON_ONLY


def messages_wire(messages: tuple[Message, ...]) -> list[JSONObject]:
    """User and assistant turns, merged where one role repeats, tool results first."""
    out: list[JSONObject] = []
    for message in messages:
        if message.role == "system":
            continue
        blocks = [w for w in map(_block, message.content) if w is not None]
        if not blocks:
            continue
        if out and out[-1]["role"] == message.role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": message.role, "content": blocks})
    for turn in out:
        content = turn["content"]
        if turn["role"] == "user" and any(b["type"] == "tool_result" for b in content[1:]):
            turn["content"] = sorted(content, key=lambda b: b["type"] != "tool_result")
    return out


def _text(block: TextBlock) -> JSONObject:
    wire: JSONObject = {"type": "text", "text": block.text}
    if block.cache_control is not None:
        wire["cache_control"] = block.cache_control
    return wire


def _block(block: ContentBlock) -> JSONObject | None:
    if isinstance(block, TextBlock):
        return _text(block) if block.text else None
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResultBlock):
        return _tool_result(block)
    if isinstance(block, ImageBlock):
        return image_wire(block)
    if isinstance(block, ThinkingBlock):
        if not block.signature:
            return None
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if isinstance(block, RedactedThinkingBlock):
        return {"type": "redacted_thinking", "data": block.data}
    return None


def _tool_result(block: ToolResultBlock) -> JSONObject:
    wire: JSONObject = {"type": "tool_result", "tool_use_id": block.tool_use_id}
    content = [w for w in map(_block, block.content) if w is not None]
    if content:
        wire["content"] = content
    if block.is_error:
        wire["is_error"] = True
    if block.cache_control is not None:
        wire["cache_control"] = block.cache_control
    return wire


def image_wire(block: ImageBlock) -> JSONObject:
    """Inline data or a ``data:`` URL -> base64 source; an http(s) URL -> url source."""
    if block.data is not None:
        source = {
            "type": "base64",
            "media_type": block.media_type or "image/png",
            "data": block.data,
        }
        return {"type": "image", "source": source}
    url = block.url or ""
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if not sep or encoding != "base64":
            raise InvalidRequestError("image data URL must be base64-encoded", param="image_url")
        source = {"type": "base64", "media_type": media_type or "image/png", "data": data}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": url}}


def tools_wire(req: ChatRequest) -> list[JSONObject]:
    """Client tools only: name, description, input_schema (other dialects' extras dropped)."""
    tools: list[JSONObject] = []
    for tool in req.tools:
        wire: JSONObject = {
            "name": tool.name,
            "input_schema": tool.input_schema or {"type": "object", "properties": {}},
        }
        if tool.description:
            wire["description"] = tool.description
        tools.append(wire)
    return tools


def tool_choice_wire(choice: ToolChoice) -> JSONObject:
    """Anthropic's ``tool_choice``; ``none`` takes no parallel-use flag."""
    wire: JSONObject = {"type": choice.type}
    if choice.type == "tool":
        wire["name"] = choice.name
    if choice.disable_parallel and choice.type != "none":
        wire["disable_parallel_tool_use"] = True
    return wire
