"""Gateway errors rendered as Anthropic error JSON.

The shape is ``{"type": "error", "error": {"type": T, "message": M}, "request_id": R}``; ``T`` is
one of the error types Anthropic documents, chosen from the error's neutral ``kind``.
"""

from __future__ import annotations

import orjson

from relaygate.core.errors import ErrorKind, GatewayError

_ERROR_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "payload_too_large": "request_too_large",
    "rate_limited": "rate_limit_error",
    "budget_exhausted": "rate_limit_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
    "upstream": "api_error",
    "unavailable": "api_error",
    "internal": "api_error",
}


def error_type(err: GatewayError) -> str:
    """The Anthropic ``error.type`` for ``err`` (``api_error`` for anything unlisted)."""
    return _ERROR_TYPES.get(err.kind, "api_error")


def error_payload(err: GatewayError) -> dict[str, object]:
    """The error object without a request id, as sent inside a stream's ``error`` event."""
    return {"type": "error", "error": {"type": error_type(err), "message": err.message}}


def encode_error(err: GatewayError, request_id: str) -> bytes:
    """The JSON body of an error response.

    A refusal's (401, 429: a handful of texts) is encoded once per text up to its request id,
    which is the only part written per request: a refused key or model is answered the same
    body again and again."""
    if err.status not in REUSED_STATUSES:
        payload = error_payload(err)
        payload["request_id"] = request_id
        return orjson.dumps(payload)
    said = (err.kind, err.message)
    head = _HEADS.get(said)
    if head is None:
        if len(_HEADS) >= MAX_REUSED_HEADS:
            _HEADS.clear()
        # orjson writes the keys in order and no spaces: the body without its last "}".
        head = _HEADS[said] = orjson.dumps(error_payload(err))[:-1] + b',"request_id":'
    return head + orjson.dumps(request_id) + b"}"


REUSED_STATUSES = frozenset({401, 429})
MAX_REUSED_HEADS = 256
_HEADS: dict[tuple[str, str], bytes] = {}
