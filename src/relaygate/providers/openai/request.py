"""Build the ``POST {base_url}/chat/completions`` request for an OpenAI-compatible upstream.

A request that arrived in the OpenAI dialect is relayed from its raw JSON (unknown fields included)
with only ``model`` replaced. Any other request is translated from the neutral model, keeping only
what Chat Completions can take: thinking blocks, ``cache_control``, ``top_k``, ``thinking`` and
``metadata`` are dropped. Streams always ask for the usage chunk, for billing; the relay hides it
from callers who did not ask for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core.types import (
    ChatRequest,
    ImageBlock,
    Message,
    ResponseFormat,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from relaygate.providers.base import UpstreamRequest, UpstreamTarget, UpstreamUrls


def build_request(req: ChatRequest, target: UpstreamTarget, request_id: str) -> UpstreamRequest:
    """The upstream HTTP request for ``req`` at ``target``."""
    headers = {"content-type": "application/json", "x-request-id": request_id}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    if target.headers:
        headers.update(target.headers)
    if req.dialect == "openai" and req.raw:
        body = _passthrough(req, target.model)
    else:
        body = _translate(req, target)
    # Positional, in UpstreamRequest's field order (keywords cost more, once per attempt).
    return UpstreamRequest(
        "POST",
        _CHAT_URLS.of(target.base_url),
        headers,
        orjson.dumps(body),
        req.stream,
    )


_CHAT_URLS = UpstreamUrls("/chat/completions")


def _passthrough(req: ChatRequest, model: str) -> dict[str, Any]:
    """The caller's body with ``model`` replaced and a stream's usage asked for: ``req.raw``
    itself when that changes nothing, else a shallow copy (``req.raw`` may be relayed again to
    another deployment, so it is never changed)."""
    raw = req.raw
    body = raw if raw.get("model") == model else {**raw, "model": model}
    if req.stream:
        options = raw.get("stream_options")
        if not isinstance(options, dict):
            body = {**body, "stream_options": {"include_usage": True}}
        elif options.get("include_usage") is not True:
            body = {**body, "stream_options": {**options, "include_usage": True}}
    return body


def _translate(req: ChatRequest, target: UpstreamTarget) -> dict[str, Any]:
    messages = _messages(req, target.flatten_content)
    body: dict[str, Any] = {"model": target.model, "messages": messages}
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop"] = list(req.stop)
    if req.tools:
        body["tools"] = [
            {"type": "function", "function": _function(t.name, t.description, t.input_schema)}
            for t in req.tools
        ]
        if req.tool_choice is not None:
            _apply_tool_choice(body, req.tool_choice)
    if req.response_format is not None:
        body["response_format"] = _response_format(req.response_format)
    if req.user:
        body["user"] = req.user
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _function(name: str, description: str | None, schema: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if description:
        function["description"] = description
    function["parameters"] = schema or {"type": "object", "properties": {}}
    return function


def _apply_tool_choice(body: dict[str, Any], choice: ToolChoice) -> None:
    if choice.type == "tool" and choice.name:
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice.type == "any":
        body["tool_choice"] = "required"
    elif choice.type == "none":
        body["tool_choice"] = "none"
    else:
        body["tool_choice"] = "auto"
    if choice.disable_parallel:
        body["parallel_tool_calls"] = False


def _response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.strict:
        spec["strict"] = True
    return {"type": "json_schema", "json_schema": spec}


def _messages(req: ChatRequest, flatten: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": _join(req.system)})
    out.extend(messages_wire(req.messages, flatten))
    return out


def messages_wire(messages: tuple[Message, ...], flatten: bool = False) -> list[dict[str, Any]]:
    """Neutral messages as Chat Completions messages (a session's history uses it too)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            out.append(_assistant(message))
        elif message.role == "system":
            texts = [b for b in message.content if isinstance(b, TextBlock)]
            out.append({"role": "system", "content": _join(texts)})
        else:
            out.extend(_user(message, flatten))
    return out


def _join(blocks: tuple[TextBlock, ...] | list[TextBlock]) -> str:
    return "\n\n".join(b.text for b in blocks) if len(blocks) != 1 else blocks[0].text


def _assistant(message: Message) -> dict[str, Any]:
    texts: list[TextBlock] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            texts.append(block)
        elif isinstance(block, ToolUseBlock):
            arguments = orjson.dumps(block.input).decode()
            calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": arguments},
                }
            )
    out: dict[str, Any] = {"role": "assistant", "content": _join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    elif not texts:
        out["content"] = ""
    return out


def _user(message: Message, flatten: bool) -> list[dict[str, Any]]:
    """Tool results first, as ``role: tool`` messages (they must follow the assistant's calls),
    then the rest of the content, including images from tool results, as one user message."""
    out: list[dict[str, Any]] = []
    parts: list[TextBlock | ImageBlock] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            texts = [b for b in block.content if isinstance(b, TextBlock)]
            content = _join(texts)
            if block.is_error:
                # OpenAI tool messages have no error flag: say it in the content the model reads.
                content = f"Error: {content}" if content else "Error"
            out.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": content})
            parts.extend(b for b in block.content if isinstance(b, ImageBlock))
        elif isinstance(block, TextBlock | ImageBlock):
            parts.append(block)
    if parts:
        out.append({"role": "user", "content": _user_content(parts, flatten)})
    return out


def _user_content(parts: list[TextBlock | ImageBlock], flatten: bool) -> str | list[dict[str, Any]]:
    """One text block goes as a plain string. Several stay separate parts, so block boundaries
    (Claude Code's ``<system-reminder>`` block before the prompt) survive, unless the deployment
    flattens them for a server that rejects content arrays; images always need parts."""
    texts = [p for p in parts if isinstance(p, TextBlock)]
    if len(texts) == len(parts) and (len(texts) == 1 or flatten):
        return _join(texts)
    return [_part(p) for p in parts]


def _part(part: TextBlock | ImageBlock) -> dict[str, Any]:
    if isinstance(part, TextBlock):
        return {"type": "text", "text": part.text}
    url = part.url if part.data is None else f"data:{part.media_type};base64,{part.data}"
    return {"type": "image_url", "image_url": {"url": url}}
