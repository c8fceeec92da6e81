"""``Provider.answer_usage`` is ``parse_response(body).usage``: the same usage, the same refusals.

A same-dialect relay reads only the usage of the upstream's answer (its bytes go to the caller
unchanged), so a body ``parse_response`` would refuse as malformed (a retryable 502, tried on
the next deployment) must be refused just the same, with the same message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.providers.anthropic.test_anthropic_response import MALFORMED_ANSWERS
from tests.unit.providers.openai.test_openai_response import MALFORMED_BODIES

from relaygate.core.errors import UpstreamError
from relaygate.core.json_depth import MAX_DEPTH
from relaygate.core.types import Usage
from relaygate.providers.anthropic import AnthropicProvider
from relaygate.providers.base import Provider
from relaygate.providers.openai import OpenAIProvider
from relaygate.providers.openai.response import parse_usage

FIXTURES = Path(__file__).parents[2] / "fixtures"
PROVIDERS: dict[str, Provider] = {"openai": OpenAIProvider(), "anthropic": AnthropicProvider()}


def outcome(read: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", read(body)
    except UpstreamError as err:
        return "error", (type(err), err.message, err.status, err.retryable, err.kind)


def same(provider: Provider, body: bytes) -> tuple[str, Any]:
    expected = outcome(lambda b: provider.parse_response(b).usage, body)
    assert outcome(provider.answer_usage, body) == expected
    return expected


def deep(levels: int) -> Any:
    value: Any = {}
    for _ in range(levels):
        value = {"a": value}
    return value


OPENAI_BODIES = [
    (FIXTURES / "openai" / name).read_bytes()
    for name in (
        "chat_completion.json",
        "chat_completion_reasoning.json",
        "chat_completion_tool_calls.json",
    )
] + [
    *MALFORMED_BODIES,
    b'{"choices": [{"message": {"tool_calls": [1]}}]}',
    b'{"choices": [{"message": {"tool_calls": "x", "content": "y"}}],'
    b' "usage": {"prompt_tokens": 3}}',
    orjson.dumps(
        {
            "choices": [
                {
                    "message": {
                        "tool_calls": [
                            {
                                "function": {
                                    "name": "f",
                                    "arguments": orjson.dumps(deep(MAX_DEPTH + 2)).decode(),
                                }
                            }
                        ]
                    }
                }
            ]
        }
    ),
    orjson.dumps(
        {
            "choices": [{"message": {"content": "x"}}],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 20},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        }
    ),
]

ANTHROPIC_BODIES = [
    (FIXTURES / "anthropic" / "message_response.json").read_bytes(),
    *MALFORMED_ANSWERS,
    b'{"id":"msg_1","model":2,"content":[]}',
    b'{"id":"msg_1","model":"m","content":[],"usage":{"cache_creation":[]}}',
    b'{"id":"msg_1","model":"m","content":[{"type":"server_tool_use"}],'
    b'"usage":{"input_tokens":3,"output_tokens":2,"cache_read_input_tokens":5,'
    b'"cache_creation":{"ephemeral_1h_input_tokens":4,"ephemeral_5m_input_tokens":1}}}',
    orjson.dumps(
        {
            "id": "m",
            "model": "m",
            "content": [{"type": "tool_use", "id": "t", "name": "n", "input": deep(MAX_DEPTH + 2)}],
        }
    ),
]


@pytest.mark.parametrize("body", OPENAI_BODIES)
def test_openai_bodies(body: bytes) -> None:
    same(PROVIDERS["openai"], body)


@pytest.mark.parametrize("body", ANTHROPIC_BODIES)
def test_anthropic_bodies(body: bytes) -> None:
    same(PROVIDERS["anthropic"], body)


def test_the_bodies_cover_both_outcomes() -> None:
    for name, bodies in (("openai", OPENAI_BODIES), ("anthropic", ANTHROPIC_BODIES)):
        kinds = {same(PROVIDERS[name], body)[0] for body in bodies}
        assert kinds == {"ok", "error"}, name


_SCALARS = st.none() | st.booleans() | st.integers(-5, 2**63 - 1) | st.text(max_size=4)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "message",
                    "content",
                    "tool_calls",
                    "function",
                    "arguments",
                    "usage",
                    "prompt_tokens",
                    "completion_tokens",
                    "prompt_tokens_details",
                    "cached_tokens",
                    "id",
                    "model",
                    "type",
                    "text",
                    "input",
                    "input_tokens",
                    "output_tokens",
                    "cache_creation",
                    "name",
                    "refusal",
                    "reasoning_content",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.sampled_from(sorted(PROVIDERS)))
def test_any_json_body(value: Any, name: str) -> None:
    same(PROVIDERS[name], orjson.dumps(value))


def _reference_int(value: Any) -> int:
    from relaygate.core.types import TOKEN_COUNT_LIMIT

    return min(value, TOKEN_COUNT_LIMIT) if type(value) is int and value > 0 else 0


def reference_openai_usage(value: Any) -> Usage:
    """``parse_usage`` as it was written before it was made cheaper (the rule it must keep)."""
    if not isinstance(value, dict):
        return Usage()
    prompt = _reference_int(value.get("prompt_tokens"))
    details = value.get("prompt_tokens_details")
    cached = _reference_int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    if not cached:
        cached = _reference_int(value.get("prompt_cache_hit_tokens"))
    completion = value.get("completion_tokens_details")
    reasoning = (
        _reference_int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0
    )
    cached = min(cached, prompt)
    return Usage(
        input_tokens=prompt - cached,
        output_tokens=_reference_int(value.get("completion_tokens")),
        cache_read_tokens=cached,
        reasoning_tokens=reasoning,
    )


_COUNT = st.none() | st.booleans() | st.text(max_size=2) | st.floats(allow_nan=False)
_COUNT |= st.integers(-3, 2**63 - 1) | st.integers(-3, 40)
_DETAILS = (
    st.none()
    | st.integers()
    | st.dictionaries(
        st.sampled_from(["cached_tokens", "reasoning_tokens", "audio_tokens"]), _COUNT
    )
)
_USAGE = (
    st.none()
    | st.lists(st.integers(), max_size=2)
    | st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": _COUNT,
            "completion_tokens": _COUNT,
            "total_tokens": _COUNT,
            "prompt_tokens_details": _DETAILS,
            "completion_tokens_details": _DETAILS,
            "prompt_cache_hit_tokens": _COUNT,
        },
    )
)


@settings(max_examples=500, deadline=None)
@given(_USAGE)
def test_openai_usage_keeps_its_rule(value: Any) -> None:
    assert parse_usage(value) == reference_openai_usage(value)
