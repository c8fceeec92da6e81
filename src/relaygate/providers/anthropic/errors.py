"""Anthropic error answers -> ``UpstreamError``, mapped once here.

Status choices: the caller's own mistakes (400, 413) keep their status and the upstream's message;
a rejected gateway key (401/403) or a missing model (404) is the gateway's problem, so the caller
gets 502 and another deployment may be tried; 429 and 529 (overloaded, a capacity signal and
never a sign of a bad key) are retryable with their own kinds.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from relaygate.core.errors import UpstreamError

_MAX_MESSAGE = 500
CREDENTIALS_MESSAGE = "upstream rejected the gateway's credentials for this deployment"


def upstream_message(body: bytes) -> tuple[str, str]:
    """``(error.type, error.message)`` from an Anthropic error body, or empty strings."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", ""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return "", ""
    kind, message = error.get("type"), error.get("message")
    return (
        kind if isinstance(kind, str) else "",
        message[:_MAX_MESSAGE] if isinstance(message, str) else "",
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after`` in seconds; an HTTP-date or garbage gives None."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _caller_fault(status: int, message: str) -> UpstreamError:
    """400 and 413: the request itself is at fault; the caller sees the upstream's words."""
    if status == 413:
        said = message or "request too large for the upstream"
        return UpstreamError(said, status=413, upstream_status=413, kind="payload_too_large")
    said = message or "upstream rejected the request"
    return UpstreamError(said, status=400, upstream_status=400, kind="invalid_request")


def _capacity(status: int, said: str, headers: Mapping[str, str]) -> UpstreamError:
    """429 (rate limited) and 529 or an overloaded_error body: retry, here or elsewhere."""
    wait = retry_after(headers)
    if status == 429:
        return UpstreamError(
            f"upstream rate limited: {said}",
            status=429,
            upstream_status=429,
            kind="rate_limited",
            retryable=True,
            retry_after=wait,
        )
    return UpstreamError(
        f"upstream overloaded: {said}",
        status=503,
        upstream_status=status,
        kind="overloaded",
        retryable=True,
        retry_after=wait,
    )


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """The ``UpstreamError`` for an Anthropic error answer with HTTP ``status``."""
    kind, message = upstream_message(body)
    said = message or kind or f"HTTP {status}"
    if status in (400, 413):
        return _caller_fault(status, message)
    if status in (429, 529) or kind == "overloaded_error":
        return _capacity(status, said, headers)
    if status in (401, 403):
        return UpstreamError(
            CREDENTIALS_MESSAGE, status=502, upstream_status=status, retryable=True
        )
    if status == 404:
        said = f"upstream has no such resource for this deployment: {said}"
        return UpstreamError(said, status=502, upstream_status=404, retryable=True)
    return UpstreamError(
        f"upstream error: {said}",
        status=503 if status == 503 else 502,
        upstream_status=status,
        retryable=status >= 500 or status == 408,
    )


def stream_error(kind: str, message: str) -> UpstreamError:
    """An ``error`` event inside a stream (the HTTP status was already 200)."""
    said = message[:_MAX_MESSAGE] or kind or "unknown error"
    if kind == "overloaded_error":
        return UpstreamError(
            f"upstream overloaded: {said}", status=503, kind="overloaded", retryable=True
        )
    retryable = kind in ("api_error", "rate_limit_error", "timeout_error", "")
    return UpstreamError(f"upstream stream error: {said}", status=502, retryable=retryable)
