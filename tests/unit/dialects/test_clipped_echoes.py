"""A caller's value quoted in an error comes back clipped: a 100 kB value is not echoed whole."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from tests.unit.accounting.test_budget import key

from relaygate.admin.http import AdminError, parse_payload, query_params
from relaygate.admin.payloads import KeyCreate
from relaygate.auth.cache import check_model
from relaygate.core.errors import GatewayError
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.web.request import Request

HUGE = "x" * 100_000
DIALECTS = {"openai": OpenAIDialect(), "anthropic": AnthropicDialect()}
LIMIT = 1024


def user(content: object) -> dict[str, Any]:
    return {"role": "user", "content": content}


OPENAI_BODIES = {
    "role": [{"role": HUGE, "content": "hi"}],
    "content part type": [user([{"type": HUGE}])],
    "tool call type": [
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "type": HUGE, "function": {"name": "f", "arguments": "{}"}}],
        }
    ],
}
ANTHROPIC_BODIES = {
    "role": [{"role": HUGE, "content": "hi"}],
    "content block type": [user([{"type": HUGE}])],
}


def refusal_body(dialect: str, body: dict[str, Any]) -> bytes | None:
    """The error body the caller gets for ``body``, or None when it is accepted."""
    try:
        DIALECTS[dialect].decode_request(orjson.dumps(body), {})
    except GatewayError as err:
        return DIALECTS[dialect].encode_error(err, "req-1")
    return None


@pytest.mark.parametrize("field", list(OPENAI_BODIES))
def test_openai_decode_errors_clip_the_callers_value(field: str) -> None:
    body = {"model": "m", "messages": OPENAI_BODIES[field]}
    error = refusal_body("openai", body)
    assert error is not None and len(error) < LIMIT, error and error[:300]
    assert b"xxxx" in error  # the value is still quoted, only clipped


def test_an_openai_tool_of_an_unknown_type_is_clipped() -> None:
    body = {"model": "m", "messages": [user("hi")], "tools": [{"type": HUGE}]}
    error = refusal_body("openai", body)
    assert error is not None and len(error) < LIMIT


@pytest.mark.parametrize("field", list(ANTHROPIC_BODIES))
def test_anthropic_decode_errors_never_echo_the_callers_value(field: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": ANTHROPIC_BODIES[field]}
    error = refusal_body("anthropic", body)
    assert error is None or len(error) < LIMIT


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_a_model_the_key_may_not_use_is_clipped_in_both_dialects(dialect: str) -> None:
    restricted = replace(key(), allowed_models=("mock-gpt",))
    with pytest.raises(GatewayError) as refused:
        check_model(restricted, HUGE)
    assert len(DIALECTS[dialect].encode_error(refused.value, "req-1")) < LIMIT


def test_admin_unknown_fields_and_query_parameters_are_clipped() -> None:
    with pytest.raises(AdminError) as unknown_field:
        parse_payload(KeyCreate, {"name": "k", HUGE: 1})
    assert len(unknown_field.value.message) < LIMIT
    scope = {"method": "GET", "path": "/admin/usage", "headers": [], "query_string": HUGE.encode()}
    with pytest.raises(AdminError) as unknown_param:
        query_params(Request(scope, None), frozenset({"month"}))  # type: ignore[arg-type]
    assert len(unknown_param.value.message) < LIMIT
    assert len(unknown_param.value.param or "") < LIMIT
