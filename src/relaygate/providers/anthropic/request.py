"""Upstream requests for an Anthropic deployment: ``/v1/messages`` and its ``count_tokens``.

A request that arrived in the Anthropic dialect is relayed as the client wrote it: ``raw`` with
only ``model`` replaced, so fields this gateway does not know (``context_management``,
``output_config``, ``defer_loading``, role-system turns, ...) reach the upstream unchanged. Other
dialects are translated from the neutral model (``translate.py``).
"""

from __future__ import annotations

import orjson

from relaygate.core.types import ChatRequest, JSONObject
from relaygate.providers.anthropic.translate import (
    messages_wire,
    system_blocks,
    tool_choice_wire,
    tools_wire,
    translate,
)
from relaygate.providers.base import UpstreamRequest, UpstreamTarget, UpstreamUrls

DEFAULT_VERSION = "2023-06-01"
_MESSAGES_URLS = UpstreamUrls("/v1/messages")
_COUNT_URLS = UpstreamUrls("/v1/messages/count_tokens")
# Messages-only fields that count_tokens rejects as extra inputs.
_NOT_COUNTED = frozenset(
    {
        "max_tokens",
        "stream",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "metadata",
        "service_tier",
        "container",
        "inference_geo",
        "diagnostics",
    }
)


def headers_for(req: ChatRequest, target: UpstreamTarget, request_id: str) -> dict[str, str]:
    """Upstream headers: the deployment's key and headers, the caller's anthropic-* headers."""
    headers = {
        "content-type": "application/json",
        "anthropic-version": req.extra_headers.get("anthropic-version") or DEFAULT_VERSION,
        "x-request-id": request_id,
    }
    beta = req.extra_headers.get("anthropic-beta")
    if beta:
        headers["anthropic-beta"] = beta
    if target.api_key:
        headers["x-api-key"] = target.api_key
    headers.update(target.headers)
    return headers


def _relayed(req: ChatRequest, model: str) -> bytes:
    """The caller's body with ``model`` replaced (key order kept)."""
    raw = req.raw
    return orjson.dumps(raw if raw.get("model") == model else {**raw, "model": model})


def build_request(req: ChatRequest, target: UpstreamTarget, request_id: str) -> UpstreamRequest:
    """``POST {base_url}/v1/messages`` (``base_url`` without ``/v1``, as in the anthropic SDK)."""
    if req.dialect == "anthropic" and req.raw:
        body = _relayed(req, target.model)
    else:
        max_tokens = req.max_tokens or target.default_max_tokens
        body = orjson.dumps(translate(req, target.model, max_tokens))
    # Positional, in UpstreamRequest's field order (keywords cost more, once per attempt).
    return UpstreamRequest(
        "POST",
        _MESSAGES_URLS.of(target.base_url),
        headers_for(req, target, request_id),
        body,
        req.stream,
    )


def count_tokens_body(req: ChatRequest, model: str) -> JSONObject:
    """What ``count_tokens`` accepts: model, messages, system, tools, tool_choice, thinking..."""
    if req.dialect == "anthropic" and req.raw:
        body = {k: v for k, v in req.raw.items() if k not in _NOT_COUNTED}
        body["model"] = model
        return body
    body = {"model": model, "messages": messages_wire(req.messages)}
    system = system_blocks(req)
    if system:
        body["system"] = system
    if req.tools:
        body["tools"] = tools_wire(req)
        if req.tool_choice is not None:
            body["tool_choice"] = tool_choice_wire(req.tool_choice)
    return body


def build_count_tokens(
    req: ChatRequest, target: UpstreamTarget, request_id: str
) -> UpstreamRequest:
    """``POST {base_url}/v1/messages/count_tokens``."""
    return UpstreamRequest(
        method="POST",
        url=_COUNT_URLS.of(target.base_url),
        headers=headers_for(req, target, request_id),
        body=orjson.dumps(count_tokens_body(req, target.model)),
    )
