"""GatewayError -> OpenAI error JSON: ``{"error": {"message", "type", "param", "code"}}``.

The official SDKs choose their exception class from the HTTP status, so ``type`` and ``code`` are
for people and for clients that branch on ``code`` (``rate_limit_exceeded``, ``insufficient_quota``,
``model_not_found``), and follow OpenAI's own values where it has one.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core.errors import ErrorKind, GatewayError, ModelNotFoundError

# kind -> (type, code)
_TYPES: dict[ErrorKind, tuple[str, str | None]] = {
    "invalid_request": ("invalid_request_error", None),
    "authentication": ("authentication_error", "invalid_api_key"),
    "permission": ("permission_error", "model_not_allowed"),
    "not_found": ("not_found_error", "not_found"),
    "payload_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limited": ("rate_limit_error", "rate_limit_exceeded"),
    "budget_exhausted": ("insufficient_quota", "insufficient_quota"),
    "overloaded": ("server_error", "overloaded"),
    "upstream": ("server_error", "upstream_error"),
    "timeout": ("server_error", "timeout"),
    "unavailable": ("server_error", "service_unavailable"),
    "internal": ("server_error", "internal_error"),
}


def error_object(err: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    """The inner ``error`` object; server-side failures name the request id for support."""
    type_, code = _TYPES.get(err.kind, ("server_error", None))
    if isinstance(err, ModelNotFoundError):
        code = "model_not_found"
    message = err.message
    if request_id and err.status >= 500:
        message = f"{message} (request id: {request_id})"
    return {"message": message, "type": type_, "param": err.param, "code": code}


def encode_error(err: GatewayError, request_id: str | None = None) -> bytes:
    """The full error body for an HTTP error reply (the status is ``err.status``).

    A refusal's body (401, 429: no request id in it, a handful of texts) is encoded once per
    text and reused: a refused key or model is answered the same body again and again."""
    if err.status not in REUSED_STATUSES:
        return orjson.dumps({"error": error_object(err, request_id)})
    said = (err.kind, err.message, err.param, type(err))
    body = _BODIES.get(said)
    if body is None:
        if len(_BODIES) >= MAX_REUSED_BODIES:
            _BODIES.clear()
        body = _BODIES[said] = orjson.dumps({"error": error_object(err, request_id)})
    return body


REUSED_STATUSES = frozenset({401, 429})
MAX_REUSED_BODIES = 256
_BODIES: dict[tuple[str, str, str | None, type[GatewayError]], bytes] = {}
