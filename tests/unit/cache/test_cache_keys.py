"""Cache-key normalization: equal requests give equal keys whatever their key order; any change
of a field the answer depends on gives a different key; ids, metadata, user and stream do not."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.cache import GLOBAL_SCOPE, cache_key
from relaygate.core.types import ChatRequest
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect

OPENAI = OpenAIDialect()
ANTHROPIC = AnthropicDialect()
text = st.text(min_size=1, max_size=20)


@st.composite
def openai_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt",
        "messages": [
            {"role": draw(st.sampled_from(["user", "system"])), "content": draw(text)}
            for _ in range(draw(st.integers(1, 3)))
        ],
    }
    optional = {
        "temperature": st.floats(0, 2, allow_nan=False),
        "top_p": st.floats(0, 1, allow_nan=False),
        "max_tokens": st.integers(1, 10_000),
        "stop": st.lists(text, min_size=1, max_size=3),
        "seed": st.integers(0, 1000),
        "presence_penalty": st.floats(-2, 2, allow_nan=False),
        "response_format": st.just({"type": "json_object"}),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return body


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def decode(body: dict[str, Any]) -> ChatRequest:
    return OPENAI.decode_request(orjson.dumps(body), {})


@settings(max_examples=60, deadline=None)
@given(openai_bodies(), st.randoms(use_true_random=False))
def test_equal_requests_in_any_key_order_have_equal_keys(
    body: dict[str, Any], rng: random.Random
) -> None:
    assert cache_key(decode(body), "gpt", "k") == cache_key(decode(shuffled(body, rng)), "gpt", "k")


@settings(max_examples=60, deadline=None)
@given(
    openai_bodies(),
    st.sampled_from(["temperature", "top_p", "max_tokens", "stop", "seed", "messages", "tools"]),
)
def test_changing_a_relevant_field_changes_the_key(body: dict[str, Any], field: str) -> None:
    changed = dict(body)
    if field == "temperature":
        changed[field] = body.get(field, 1.0) + 0.5
    elif field == "top_p":
        changed[field] = body.get(field, 1.0) / 2 + 0.01
    elif field in ("max_tokens", "seed"):
        changed[field] = body.get(field, 7) + 1
    elif field == "stop":
        changed[field] = [*body.get(field, []), "zz-end"]
    elif field == "messages":
        changed[field] = [*body[field], {"role": "user", "content": "one more"}]
    else:
        changed[field] = [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ]
    assert cache_key(decode(body), "gpt", "k") != cache_key(decode(changed), "gpt", "k")


@settings(max_examples=40, deadline=None)
@given(openai_bodies(), text, text, st.booleans())
def test_ids_metadata_user_and_stream_do_not_change_the_key(
    body: dict[str, Any], user: str, tag: str, stream: bool
) -> None:
    noisy = {**body, "user": user, "metadata": {"tag": tag}, "stream": stream}
    if stream:
        noisy["stream_options"] = {"include_usage": True}
    assert cache_key(decode(body), "gpt", "k") == cache_key(decode(noisy), "gpt", "k")


def test_the_resolved_model_not_the_alias_is_keyed() -> None:
    alias = decode({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
    named = decode({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
    assert cache_key(alias, "gpt", "k") == cache_key(named, "gpt", "k")
    assert cache_key(named, "gpt", "k") != cache_key(named, "other", "k")


def test_scope_separates_keys_and_tool_choice_counts() -> None:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    req = decode(body)
    assert cache_key(req, "gpt", "alice") != cache_key(req, "gpt", "bob")
    assert cache_key(req, "gpt", "alice").digest == cache_key(req, "gpt", GLOBAL_SCOPE).digest
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    auto = decode({**body, "tools": tools, "tool_choice": "auto"})
    required = decode({**body, "tools": tools, "tool_choice": "required"})
    assert cache_key(auto, "gpt", "k") != cache_key(required, "gpt", "k")


def test_anthropic_system_thinking_and_beta_header_count() -> None:
    body = {"model": "c", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}

    def key(extra: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        req = ANTHROPIC.decode_request(orjson.dumps({**body, **extra}), headers or {})
        return cache_key(req, "c", "k").digest

    plain = key({})
    assert key({"system": "be brief"}) != plain
    assert key({"thinking": {"type": "enabled", "budget_tokens": 1024}}) != plain
    assert key({}, {"anthropic-beta": "x-2025"}) != plain
    assert key({"metadata": {"user_id": "u1"}}) == plain


def test_the_two_dialects_never_share_a_key() -> None:
    openai = decode({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    anthropic = ANTHROPIC.decode_request(
        orjson.dumps(
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        ),
        {},
    )
    assert cache_key(openai, "m", "k") != cache_key(anthropic, "m", "k")
