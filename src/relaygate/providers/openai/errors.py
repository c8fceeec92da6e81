"""Classify an OpenAI-compatible upstream's error reply into an ``UpstreamError``.

The caller sees the upstream's own message only where it is about the caller's request (400, 413,
429, 5xx); credential failures get a fixed message, because OpenAI's 401 text quotes part of the
key. Anything that looks like a secret key is masked in echoed messages all the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from relaygate.core.errors import UpstreamError

_MAX_MESSAGE = 500
_SECRET = re.compile(r"\b(sk|rk|rg)-[A-Za-z0-9_\-*]{6,}")
_CREDENTIALS = "upstream rejected the gateway's credentials for this deployment"


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """An ``UpstreamError`` for a non-2xx reply; ``retryable`` says whether to try again."""
    detail = upstream_message(body) or f"HTTP {status}"
    if status == 429:
        return UpstreamError(
            f"upstream rate limit: {detail}",
            status=429,
            upstream_status=status,
            retryable=True,
            retry_after=retry_after(headers),
            kind="rate_limited",
        )
    if status in (400, 422):
        return UpstreamError(detail, status=400, upstream_status=status, kind="invalid_request")
    if status in (401, 403):
        return UpstreamError(_CREDENTIALS, status=502, upstream_status=status, retryable=True)
    if status == 413:
        return UpstreamError(detail, status=413, upstream_status=status, kind="payload_too_large")
    return _server_side(status, headers, detail)


def _server_side(status: int, headers: Mapping[str, str], detail: str) -> UpstreamError:
    wait = retry_after(headers)
    if status == 408:
        return UpstreamError(
            f"upstream timed out: {detail}",
            status=504,
            upstream_status=status,
            retryable=True,
            kind="timeout",
        )
    if status in (503, 529):
        return UpstreamError(
            f"upstream unavailable: {detail}",
            status=503,
            upstream_status=status,
            retryable=True,
            retry_after=wait,
            kind="overloaded",
        )
    if 500 <= status <= 599:
        return UpstreamError(
            f"upstream error: {detail}",
            status=502,
            upstream_status=status,
            retryable=True,
            retry_after=wait,
        )
    if status == 404:
        return UpstreamError(
            f"upstream has no such model or endpoint for this deployment: {detail}",
            status=502,
            upstream_status=status,
        )
    return UpstreamError(
        f"upstream error: {detail}", status=502, upstream_status=status, retryable=status == 409
    )


def upstream_message(body: bytes) -> str | None:
    """The human message in an OpenAI-style error body, masked and shortened; None if absent."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return error_message(data)


def error_message(data: Any) -> str | None:
    """The message of a decoded error body (``{"error": {"message": ...}}``, ``{"error": "..."}``
    or ``{"message": ...}``), masked and shortened."""
    if not isinstance(data, dict):
        return None
    error = data.get("error", data)
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message:
        return None
    return _SECRET.sub("[redacted]", message[:_MAX_MESSAGE])


def stream_error(data: Any) -> UpstreamError:
    """An error chunk inside a 200 stream; worth another attempt unless it blames the request."""
    error = data.get("error") if isinstance(data, dict) else None
    blame = error.get("type") if isinstance(error, dict) else None
    detail = error_message(data) or "the upstream stream reported an error"
    return UpstreamError(
        f"upstream error: {detail}",
        status=502,
        upstream_status=200,
        retryable=blame != "invalid_request_error",
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (HTTP dates are ignored)."""
    milliseconds = _header_number(headers, "retry-after-ms")
    if milliseconds is not None:
        return milliseconds / 1000.0
    return _header_number(headers, "retry-after")


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def malformed_response(what: str = "") -> UpstreamError:
    """A 200 reply whose body is not a chat completion: retry elsewhere."""
    detail = f": {what}" if what else ""
    return UpstreamError(
        f"upstream returned a malformed response{detail}",
        status=502,
        upstream_status=200,
        retryable=True,
    )
