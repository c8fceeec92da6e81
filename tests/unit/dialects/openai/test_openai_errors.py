"""GatewayError -> OpenAI error JSON, and how the official SDK reads it."""

from __future__ import annotations

import httpx2
import openai
import orjson
import pytest

from relaygate.core.errors import (
    AuthenticationError,
    BudgetExhaustedError,
    GatewayError,
    InternalError,
    InvalidRequestError,
    ModelNotFoundError,
    NoRouteError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from relaygate.dialects.openai import OpenAIDialect


def render(err: GatewayError, request_id: str = "req_1") -> dict[str, object]:
    body = orjson.loads(OpenAIDialect().encode_error(err, request_id))
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("err", "type_", "code"),
    [
        (InvalidRequestError("messages: bad", param="messages"), "invalid_request_error", None),
        (AuthenticationError("bad key"), "authentication_error", "invalid_api_key"),
        (PermissionDeniedError("no"), "permission_error", "model_not_allowed"),
        (NotFoundError("nothing"), "not_found_error", "not_found"),
        (ModelNotFoundError("gpt-9", ["b", "a"]), "not_found_error", "model_not_found"),
        (PayloadTooLargeError("big"), "invalid_request_error", "request_too_large"),
        (RateLimitedError("slow", retry_after=3), "rate_limit_error", "rate_limit_exceeded"),
        (BudgetExhaustedError("broke"), "insufficient_quota", "insufficient_quota"),
        (UpstreamError("bad gateway"), "server_error", "upstream_error"),
        (UpstreamError("busy", status=503, kind="overloaded"), "server_error", "overloaded"),
        (
            UpstreamError("limited", status=429, kind="rate_limited"),
            "rate_limit_error",
            "rate_limit_exceeded",
        ),
        (UpstreamError("bad", status=400, kind="invalid_request"), "invalid_request_error", None),
        (UpstreamTimeoutError("slow upstream"), "server_error", "timeout"),
        (NoRouteError("all failed", ["a"]), "server_error", "service_unavailable"),
        (InternalError("oops"), "server_error", "internal_error"),
    ],
)
def test_type_and_code(err: GatewayError, type_: str, code: str | None) -> None:
    error = render(err)
    assert error["type"] == type_
    assert error["code"] == code


def test_param_and_message() -> None:
    error = render(
        InvalidRequestError("messages[2].content: expected", param="messages[2].content")
    )
    assert error["param"] == "messages[2].content"
    assert error["message"] == "messages[2].content: expected"


def test_model_not_found_lists_models() -> None:
    error = render(ModelNotFoundError("gpt-9", ["b", "a"]))
    assert error["param"] == "model"
    assert "Available models: a, b" in str(error["message"])


def test_request_id_only_on_server_errors() -> None:
    assert render(InternalError("oops"), "req_42")["message"] == "oops (request id: req_42)"
    assert render(InvalidRequestError("bad"), "req_42")["message"] == "bad"


@pytest.mark.parametrize(
    ("err", "exc"),
    [
        (InvalidRequestError("bad", param="model"), openai.BadRequestError),
        (AuthenticationError("bad key"), openai.AuthenticationError),
        (PermissionDeniedError("no"), openai.PermissionDeniedError),
        (ModelNotFoundError("m", []), openai.NotFoundError),
        (RateLimitedError("slow"), openai.RateLimitError),
        (UpstreamError("down"), openai.InternalServerError),
    ],
)
def test_sdk_raises_matching_exception(err: GatewayError, exc: type[Exception]) -> None:
    body = OpenAIDialect().encode_error(err, "req_1")

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            err.status, headers={"content-type": "application/json"}, content=body
        )

    client = openai.OpenAI(
        api_key="k",
        base_url="http://gw.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="m", messages=[])
    assert err.message in str(info.value)
