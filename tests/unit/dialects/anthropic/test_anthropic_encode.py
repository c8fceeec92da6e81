"""Non-streamed answers and error bodies in the Anthropic wire format."""

from __future__ import annotations

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
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from relaygate.core.types import (
    ChatResponse,
    FinishReason,
    ImageBlock,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.dialects.anthropic import AnthropicDialect

dialect = AnthropicDialect()


def response(**overrides: object) -> ChatResponse:
    fields: dict[str, object] = {
        "id": "chatcmpl-123",
        "model": "gpt-4o",
        "content": (TextBlock("hi"),),
        "finish_reason": FinishReason.END_TURN,
        "usage": Usage(input_tokens=10, output_tokens=3, cache_read_tokens=4, cache_write_tokens=2),
    }
    fields.update(overrides)
    return ChatResponse(**fields)  # type: ignore[arg-type]


def test_full_message_body() -> None:
    body = orjson.loads(
        dialect.encode_response(
            response(
                content=(
                    ThinkingBlock("think", "sig=="),
                    RedactedThinkingBlock("opaque"),
                    TextBlock("hi"),
                    ToolUseBlock("call_1", "Bash", {"command": "ls"}),
                    ImageBlock(url="https://x"),
                ),
                finish_reason=FinishReason.TOOL_USE,
            )
        )
    )
    assert body == {
        "id": "msg_chatcmpl-123",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o",
        "content": [
            {"type": "thinking", "thinking": "think", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_creation_input_tokens": 2,
            "cache_read_input_tokens": 4,
        },
    }


def test_ids_keep_msg_prefix_and_empty_ids_get_one() -> None:
    assert orjson.loads(dialect.encode_response(response(id="msg_abc")))["id"] == "msg_abc"
    generated = orjson.loads(dialect.encode_response(response(id="")))["id"]
    assert generated.startswith("msg_")
    assert len(generated) > 10


@pytest.mark.parametrize(
    ("reason", "wire"),
    [
        (FinishReason.END_TURN, "end_turn"),
        (FinishReason.MAX_TOKENS, "max_tokens"),
        (FinishReason.STOP_SEQUENCE, "stop_sequence"),
        (FinishReason.TOOL_USE, "tool_use"),
        (FinishReason.CONTENT_FILTER, "refusal"),
        (FinishReason.PAUSE_TURN, "pause_turn"),
    ],
)
def test_stop_reasons(reason: FinishReason, wire: str) -> None:
    body = orjson.loads(dialect.encode_response(response(finish_reason=reason, stop_sequence="X")))
    assert body["stop_reason"] == wire
    assert body["stop_sequence"] == "X"


def test_reasoning_tokens_reported_as_thinking_tokens() -> None:
    body = orjson.loads(
        dialect.encode_response(response(usage=Usage(output_tokens=50, reasoning_tokens=30)))
    )
    assert body["usage"]["output_tokens_details"] == {"thinking_tokens": 30}


def test_count_tokens_body() -> None:
    assert orjson.loads(dialect.encode_count_tokens(1234)) == {"input_tokens": 1234}


@pytest.mark.parametrize(
    ("err", "wire_type"),
    [
        (InvalidRequestError("messages: bad", param="messages"), "invalid_request_error"),
        (AuthenticationError("bad key"), "authentication_error"),
        (PermissionDeniedError("model not allowed"), "permission_error"),
        (ModelNotFoundError("nope", ["a", "b"]), "not_found_error"),
        (PayloadTooLargeError("too big"), "request_too_large"),
        (RateLimitedError("slow down", retry_after=2), "rate_limit_error"),
        (BudgetExhaustedError("budget"), "rate_limit_error"),
        (UpstreamError("busy", status=503, kind="overloaded"), "overloaded_error"),
        (UpstreamError("bad gateway"), "api_error"),
        (UpstreamTimeoutError("slow upstream"), "timeout_error"),
        (NoRouteError("all failed", ["a"]), "api_error"),
        (InternalError("oops"), "api_error"),
        (
            UpstreamError("upstream said no", status=400, kind="invalid_request"),
            "invalid_request_error",
        ),
    ],
)
def test_error_types(err: GatewayError, wire_type: str) -> None:
    body = orjson.loads(dialect.encode_error(err, "req_1"))
    assert body == {
        "type": "error",
        "error": {"type": wire_type, "message": err.message},
        "request_id": "req_1",
    }
