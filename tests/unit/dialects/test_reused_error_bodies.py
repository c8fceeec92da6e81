"""Refusal bodies encoded once per text and reused: byte for byte what encoding each gives."""

from __future__ import annotations

import orjson
import pytest

from relaygate.core.errors import (
    AuthenticationError,
    BudgetExhaustedError,
    BudgetHeldError,
    GatewayError,
    InternalError,
    InvalidRequestError,
    RateLimitedError,
)
from relaygate.dialects.anthropic import errors as anthropic_errors
from relaygate.dialects.openai import errors as openai_errors

ERRORS = [
    RateLimitedError("relaygate is busy: retry in 1 s", retry_after=0.02),
    RateLimitedError("relaygate is busy: retry in 2 s", retry_after=1.5),
    RateLimitedError('This API key exceeded its "limit": retry in 1 s', retry_after=0.5),
    BudgetExhaustedError("Monthly budget exhausted"),
    BudgetHeldError("Budget held by requests in flight", retry_after=1.0),
    AuthenticationError("Invalid API key"),
    AuthenticationError("Invalid API key", param="authorization"),
    GatewayError("custom 429", status=429),
    InvalidRequestError("messages: required", param="messages"),
    InternalError("boom"),
]


def openai_reference(err: GatewayError, request_id: str) -> bytes:
    return orjson.dumps({"error": openai_errors.error_object(err, request_id)})


def anthropic_reference(err: GatewayError, request_id: str) -> bytes:
    payload = anthropic_errors.error_payload(err)
    payload["request_id"] = request_id
    return orjson.dumps(payload)


@pytest.mark.parametrize("err", ERRORS, ids=lambda e: f"{e.status}-{e.message[:20]}")
def test_each_body_is_the_one_encoded_afresh(err: GatewayError) -> None:
    for request_id in ("req_1", "req_2", 'odd "id" \u00e9'):  # remembered after the first
        assert openai_errors.encode_error(err, request_id) == openai_reference(err, request_id)
        assert anthropic_errors.encode_error(err, request_id) == anthropic_reference(
            err, request_id
        )


def test_the_reused_bodies_are_bounded() -> None:
    for n in range(3 * openai_errors.MAX_REUSED_BODIES):
        err = RateLimitedError(f"relaygate is busy: retry in {n} s", retry_after=float(n))
        openai_errors.encode_error(err, "req_1")
        anthropic_errors.encode_error(err, "req_1")
    assert len(openai_errors._BODIES) <= openai_errors.MAX_REUSED_BODIES
    assert len(anthropic_errors._HEADS) <= anthropic_errors.MAX_REUSED_HEADS
