"""classify_error: status, kind, retryability, Retry-After, and no leaked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.core.errors import UpstreamError
from relaygate.providers.openai import OpenAIProvider

FIXTURES = Path(__file__).parents[3] / "fixtures" / "openai"


def classify(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> UpstreamError:
    return OpenAIProvider().classify_error(status, headers or {}, body)


def test_429_with_retry_after_ms() -> None:
    body = (FIXTURES / "error_429.json").read_bytes()
    err = classify(429, body, {"retry-after-ms": "1250", "retry-after": "2"})
    assert (err.status, err.kind, err.retryable, err.upstream_status) == (
        429,
        "rate_limited",
        True,
        429,
    )
    assert err.retry_after == 1.25
    assert "Rate limit reached for gpt-4o" in err.message


def test_429_retry_after_seconds_any_case() -> None:
    assert classify(429, b"", {"Retry-After": "7"}).retry_after == 7.0
    assert classify(429, b"", {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}).retry_after is None
    assert classify(429, b"", {"retry-after": "inf"}).retry_after is None
    assert classify(429, b"", {"retry-after": "-3"}).retry_after is None
    assert classify(429).retry_after is None


def test_400_keeps_upstream_message() -> None:
    err = classify(400, (FIXTURES / "error_400_context.json").read_bytes())
    assert (err.status, err.kind, err.retryable) == (400, "invalid_request", False)
    assert err.message.startswith("This model's maximum context length is 128000 tokens")


def test_422_is_invalid_request() -> None:
    err = classify(422, b'{"detail": "bad"}')
    assert (err.status, err.kind, err.retryable, err.message) == (
        400,
        "invalid_request",
        False,
        "HTTP 422",
    )


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_never_echoed(status: int) -> None:
    err = classify(status, (FIXTURES / "error_401.json").read_bytes())
    assert err.message == "upstream rejected the gateway's credentials for this deployment"
    assert (err.status, err.retryable, err.upstream_status) == (502, True, status)
    assert "sk-" not in err.message


def test_secret_like_text_is_masked() -> None:
    err = classify(500, b'{"error": {"message": "key sk-abcdef123456 failed"}}')
    assert "sk-abcdef123456" not in err.message
    assert "[redacted]" in err.message


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (502, 502), (504, 502)])
def test_5xx_retryable(status: int, expected: int) -> None:
    err = classify(status, b'{"error": {"message": "boom", "type": "server_error"}}')
    assert (err.status, err.kind, err.retryable) == (expected, "upstream", True)
    assert err.message == "upstream error: boom"


@pytest.mark.parametrize("status", [503, 529])
def test_overloaded(status: int) -> None:
    err = classify(status, b"<html>busy</html>", {"retry-after": "3"})
    assert (err.status, err.kind, err.retryable, err.retry_after) == (503, "overloaded", True, 3.0)
    assert err.message == f"upstream unavailable: HTTP {status}"


def test_408_timeout() -> None:
    err = classify(408)
    assert (err.status, err.kind, err.retryable) == (504, "timeout", True)


def test_404_not_retryable() -> None:
    err = classify(404, b'{"error": {"message": "The model `x` does not exist"}}')
    assert (err.status, err.retryable) == (502, False)
    assert "does not exist" in err.message


def test_413() -> None:
    err = classify(413, b"too big")
    assert (err.status, err.kind, err.retryable) == (413, "payload_too_large", False)


def test_other_4xx() -> None:
    assert (classify(402).status, classify(402).retryable) == (502, False)
    assert classify(409).retryable


def test_error_string_shapes() -> None:
    assert classify(400, b'{"error": "plain string"}').message == "plain string"
    assert classify(400, b'{"message": "top level"}').message == "top level"
    assert classify(400, b'"x"').message == "HTTP 400"
    long = classify(400, b'{"error": {"message": "' + b"a" * 5000 + b'"}}').message
    assert len(long) == 500
