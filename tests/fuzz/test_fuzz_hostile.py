"""Hostile requests against the real gateway: broken bodies, odd headers, wrong routes, faults.

Whatever arrives, the answer is a 4xx error in the caller's dialect (or a success, where the
input happens to be acceptable), never a 5xx, never a guarded secret.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.common import FAULT_MODELS
from tests.fuzz.hostile import TOOL_INPUTS, hostile_bodies, odd_headers
from tests.fuzz.oracle import Dialect, FuzzTarget, Kind
from tests.fuzz.profile import fuzz_settings

BASE: dict[tuple[Dialect, Kind], dict[str, Any]] = {
    ("openai", "chat"): {"model": "fz-claude", "messages": [{"role": "user", "content": "hi"}]},
    ("anthropic", "chat"): {
        "model": "fz-gpt",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    },
    ("anthropic", "count_tokens"): {
        "model": "fz-claude",
        "messages": [{"role": "user", "content": "hi"}],
    },
}
ROUTES = sorted(BASE)


@pytest.mark.parametrize(("dialect", "kind"), ROUTES)
@fuzz_settings(100)
@given(data=st.data())
def test_hostile_bodies(target: FuzzTarget, dialect: Dialect, kind: Kind, data: Any) -> None:
    base = {**BASE[(dialect, kind)], "model": data.draw(st.sampled_from(["fz-gpt", "fz-claude"]))}
    if kind == "chat" and data.draw(st.booleans()):
        base["stream"] = True
    body = data.draw(hostile_bodies(base))
    target.check(target.post(dialect, kind, body), dialect, kind)


@pytest.mark.parametrize(("dialect", "kind"), ROUTES)
@fuzz_settings(30)
@given(data=st.data())
def test_odd_headers(target: FuzzTarget, dialect: Dialect, kind: Kind, data: Any) -> None:
    headers = data.draw(odd_headers(target.headers(dialect)))
    body = orjson.dumps({**BASE[(dialect, kind)], "stream": data.draw(st.booleans())})
    if kind == "count_tokens":
        body = orjson.dumps(BASE[(dialect, kind)])
    target.check(target.post(dialect, kind, body, headers), dialect, kind)


@pytest.mark.parametrize(("dialect", "kind"), ROUTES)
def test_the_other_dialects_body(target: FuzzTarget, dialect: Dialect, kind: Kind) -> None:
    """An Anthropic body on the OpenAI route (and the reverse): answered in the route's dialect."""
    other = BASE[("anthropic", "chat")] if dialect == "openai" else BASE[("openai", "chat")]
    target.check(target.post(dialect, kind, orjson.dumps(other)), dialect, kind)


_TOOLS: dict[Dialect, list[dict[str, Any]]] = {
    "openai": [{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}],
    "anthropic": [{"name": "t", "input_schema": {"type": "object"}}],
}


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@fuzz_settings(40)
@given(
    tool_input=st.sampled_from(TOOL_INPUTS),
    model=st.sampled_from(["fz-gpt", "fz-claude"]),
    stream=st.booleans(),
)
def test_tool_directives_the_mock_cannot_answer(
    target: FuzzTarget, dialect: Dialect, tool_input: str, model: str, stream: bool
) -> None:
    base = BASE[(dialect, "chat")]
    messages = [{"role": "user", "content": f"mock:tool t {tool_input}"}]
    body = {**base, "model": model, "stream": stream, "tools": _TOOLS[dialect]}
    body["messages"] = messages
    target.check(target.post(dialect, "chat", orjson.dumps(body)), dialect)


_PATHS = st.sampled_from(
    [
        "/",
        "/v1",
        "/v1/",
        "/v1/chat",
        "/v1/messages/",
        "/v1/messages/batches",
        "/v1/complete",
        "/v1/embeddings",
        "/v1/models/",
        "/v1/models/%00",
        "/v1/models/fz-gpt/x",
        "/metrics/x",
        "/..%2f..%2fetc/passwd",
        "/v1/chat/completions/",
        "/healthz/",
    ]
)


@fuzz_settings(40)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    path=_PATHS,
    anthropic=st.booleans(),
)
def test_unknown_routes(target: FuzzTarget, method: str, path: str, anthropic: bool) -> None:
    dialect: Dialect = "anthropic" if anthropic or path.startswith("/v1/messages") else "openai"
    headers = target.headers(dialect)
    response = target.client.request(method, path, headers=headers, content=b"{}")
    if response.status_code < 300:
        target.check_no_secret(response)
        return
    target.check(response, dialect)


FAULTS = {"429": (), "500": (502,), "529": (502, 503, 529), "drop": (502,), "malformed": (502,)}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("model", FAULT_MODELS)
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_injected_faults(
    target: FuzzTarget, fault: str, model: str, dialect: Dialect, stream: bool
) -> None:
    """A fault the mock was told to produce may be a 5xx (only the one it maps to), in the
    caller's dialect; a stream that broke still ends with an error event."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": f"mock:fault {fault}"}],
        "stream": stream,
    }
    if dialect == "anthropic":
        body["max_tokens"] = 32
    response = target.post(dialect, "chat", orjson.dumps(body))
    target.check(response, dialect, allowed=FAULTS[fault])
    assert response.status_code != 200 or stream, response.text
