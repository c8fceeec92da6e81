"""Conversation sessions end to end: the official SDKs in both dialects against the mock.

The mock's ``mock:recall`` directive answers with the text of every user message it received, so
each round trip proves what the upstream saw, not only what the gateway stored.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis

from tests.e2e.server import Gateway, start_gateway, stop
from tests.e2e.test_accounting import admin, wait_key_known

HEADER = "x-relaygate-session"
BOTH_WIRES = ["mock-gpt", "mock-claude"]  # OpenAI-wire upstream / Anthropic-wire upstream


@pytest.fixture
def sdk(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=gateway.api_key, max_retries=0
    ) as client:
        yield client


def new_session() -> str:
    return f"shopper-{uuid.uuid4().hex[:12]}"


def openai_turn(gw: Gateway, model: str, sid: str, text: str, *, stream: bool) -> str:
    with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=gw.api_key, max_retries=0) as client:
        return openai_said(client, model, sid, text, stream=stream)


def openai_said(client: openai.OpenAI, model: str, sid: str, text: str, *, stream: bool) -> str:
    messages: Any = [{"role": "user", "content": text}]
    headers = {HEADER: sid}
    if not stream:
        done = client.chat.completions.create(model=model, messages=messages, extra_headers=headers)
        return done.choices[0].message.content or ""
    chunks = client.chat.completions.create(
        model=model, messages=messages, extra_headers=headers, stream=True
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def anthropic_turn(gw: Gateway, model: str, sid: str, text: str, *, stream: bool) -> str:
    messages: Any = [{"role": "user", "content": text}]
    headers = {HEADER: sid}
    with anthropic.Anthropic(base_url=gw.base_url, api_key=gw.api_key, max_retries=0) as client:
        if not stream:
            done = client.messages.create(
                model=model, max_tokens=300, messages=messages, extra_headers=headers
            )
            return "".join(b.text for b in done.content if b.type == "text")
        with client.messages.stream(
            model=model, max_tokens=300, messages=messages, extra_headers=headers
        ) as events:
            return events.get_final_text()


def session_of(gw: Gateway, sid: str, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key or gw.api_key}"}
    return httpx.get(f"{gw.base_url}/v1/sessions/{sid}", headers=headers)


def user_texts(session: httpx.Response) -> list[str]:
    assert session.status_code == 200, session.text
    return [
        turn["messages"][0]["content"][0].get("text", "[tool_result]")
        for turn in session.json()["turns"]
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", BOTH_WIRES)
def test_openai_sdk_round_trip_upstream_sees_history(
    gateway: Gateway, model: str, stream: bool
) -> None:
    sid = new_session()
    first = openai_turn(gateway, model, sid, "my name is Ada", stream=stream)
    assert "my name is Ada" in first
    second = openai_turn(gateway, model, sid, "I like tea", stream=stream)
    assert "I like tea" in second
    recalled = openai_turn(gateway, model, sid, "mock:recall", stream=stream)
    assert recalled == "Recall: my name is Ada | I like tea | mock:recall"
    assert user_texts(session_of(gateway, sid)) == ["my name is Ada", "I like tea", "mock:recall"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", BOTH_WIRES)
def test_anthropic_sdk_round_trip_upstream_sees_history(
    gateway: Gateway, model: str, stream: bool
) -> None:
    sid = new_session()
    anthropic_turn(gateway, model, sid, "my order is 1234", stream=stream)
    recalled = anthropic_turn(gateway, model, sid, "mock:recall", stream=stream)
    assert recalled == "Recall: my order is 1234 | mock:recall"
    turns = session_of(gateway, sid).json()["turns"]
    assert [t["messages"][1]["role"] for t in turns] == ["assistant", "assistant"]
    assert turns[0]["messages"][1]["content"][0]["text"].endswith("my order is 1234")


def test_a_session_is_shared_across_dialects(gateway: Gateway) -> None:
    sid = new_session()
    openai_turn(gateway, "mock-gpt", sid, "from openai", stream=False)
    recalled = anthropic_turn(gateway, "mock-claude", sid, "mock:recall", stream=False)
    assert recalled == "Recall: from openai | mock:recall"


@pytest.mark.parametrize("model", BOTH_WIRES)
def test_tool_use_turns_are_stored_whole_and_replayed_valid(
    gateway: Gateway, sdk: openai.OpenAI, model: str
) -> None:
    client = sdk
    sid = new_session()
    headers = {HEADER: sid}
    tool: Any = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    asked: Any = [{"role": "user", "content": 'mock:tool get_weather {"city": "Oslo"}'}]
    call = client.chat.completions.create(
        model=model, messages=asked, tools=[tool], extra_headers=headers
    )
    calls = call.choices[0].message.tool_calls
    assert calls
    result: Any = [{"role": "tool", "tool_call_id": calls[0].id, "content": "rain, 4 C"}]
    answered = client.chat.completions.create(
        model=model, messages=result, tools=[tool], extra_headers=headers
    )
    assert "rain, 4 C" in (answered.choices[0].message.content or "")
    stored = session_of(gateway, sid).json()["turns"]
    assert stored[0]["messages"][1]["content"][-1]["type"] == "tool_use"
    assert stored[1]["messages"][0]["content"][0]["type"] == "tool_result"


def test_failed_requests_leave_the_session_unchanged(gateway: Gateway) -> None:
    sid = new_session()
    openai_turn(gateway, "mock-gpt", sid, "kept", stream=False)
    with pytest.raises(openai.APIStatusError):
        openai_turn(gateway, "mock-gpt", sid, "whole mock:fault 500", stream=False)
    with pytest.raises(openai.APIError):
        openai_turn(gateway, "mock-claude", sid, "cut mock:fault drop mock:words 40", stream=True)
    assert user_texts(session_of(gateway, sid)) == ["kept"]
    assert openai_turn(gateway, "mock-gpt", sid, "mock:recall", stream=False) == (
        "Recall: kept | mock:recall"
    )


def concurrent_turns(gw: Gateway, sid: str, count: int) -> None:
    def call(n: int) -> str:
        body = {"model": "mock-gpt", "messages": [{"role": "user", "content": f"turn {n}"}]}
        headers = {"authorization": f"Bearer {gw.api_key}", HEADER: sid}
        url = f"{gw.base_url}/v1/chat/completions"
        for _ in range(20):
            answered = httpx.post(url, json=body, headers=headers, timeout=30)
            # A loaded shared machine may shed a request as busy: a client retries those.
            if answered.status_code != 429:
                break
            time.sleep(float(answered.headers.get("retry-after", "0.2")))
        return f"{answered.status_code} {answered.text[:200]}"

    with ThreadPoolExecutor(count) as pool:
        outcomes = list(pool.map(call, range(count)))
    assert [o.split()[0] for o in outcomes] == ["200"] * count, outcomes


def test_concurrent_requests_on_one_session_keep_every_turn(gateway: Gateway) -> None:
    sid = new_session()
    concurrent_turns(gateway, sid, 8)
    assert sorted(user_texts(session_of(gateway, sid))) == sorted(f"turn {n}" for n in range(8))


def test_another_key_cannot_read_extend_or_delete_a_session(gateway: Gateway) -> None:
    sid = new_session()
    openai_turn(gateway, "mock-gpt", sid, "private", stream=False)
    created = admin(gateway, "POST", "/admin/keys", {"name": f"other-{uuid.uuid4().hex[:8]}"})
    assert created.status_code == 201, created.text
    other = created.json()["key"]
    wait_key_known(gateway, other)
    refused = session_of(gateway, sid, other)
    assert refused.status_code == 404
    assert refused.json()["error"]["type"] == "not_found_error"
    in_anthropic = httpx.get(
        f"{gateway.base_url}/v1/sessions/{sid}",
        headers={"x-api-key": other, "anthropic-version": "2023-06-01"},
    )
    assert in_anthropic.status_code == 404 and in_anthropic.json()["type"] == "error"
    gone = httpx.delete(
        f"{gateway.base_url}/v1/sessions/{sid}", headers={"authorization": f"Bearer {other}"}
    )
    assert gone.status_code == 404
    # The other key's request under the same id starts its own, empty session.
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=other, max_retries=0) as theirs:
        said = openai_said(theirs, "mock-gpt", sid, "mock:recall", stream=False)
    assert said == "Recall: mock:recall"
    assert user_texts(session_of(gateway, sid)) == ["private"]


def test_delete_forgets_the_session(gateway: Gateway, http: httpx.Client) -> None:
    sid = new_session()
    openai_turn(gateway, "mock-gpt", sid, "forget me", stream=False)
    deleted = http.delete(f"/v1/sessions/{sid}")
    assert deleted.status_code == 200 and deleted.json() == {"id": sid, "deleted": True}
    assert http.get(f"/v1/sessions/{sid}").status_code == 404
    assert http.delete(f"/v1/sessions/{sid}").status_code == 404
    assert openai_turn(gateway, "mock-gpt", sid, "mock:recall", stream=False) == (
        "Recall: mock:recall"
    )


@pytest.mark.parametrize("bad", ["x" * 129, "tab\there"])
def test_bad_session_id_is_a_400_in_each_dialect_naming_the_header(
    http: httpx.Client, bad: str
) -> None:
    openai_body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    refused = http.post("/v1/chat/completions", json=openai_body, headers={HEADER: bad})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == HEADER
    assert HEADER in refused.json()["error"]["message"]
    anthropic_body = {**openai_body, "max_tokens": 50}
    refused = http.post("/v1/messages", json=anthropic_body, headers={HEADER: bad})
    assert refused.status_code == 400
    assert refused.json()["type"] == "error"
    assert HEADER in refused.json()["error"]["message"]


def test_sessions_endpoint_needs_a_key(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.base_url}/v1/sessions/abc").status_code == 401


@pytest.fixture(scope="module")
def redis_gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_server_url: str
) -> Iterator[Gateway]:
    """A gateway whose sessions live in Redis (``RELAYGATE_REDIS_URL``)."""
    home: Path = tmp_path_factory.mktemp("sessions-redis-home")
    gw = start_gateway(home, env={"RELAYGATE_REDIS_URL": f"{redis_server_url}/15"})
    yield gw
    stop(gw.process)


@pytest.mark.redis
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_redis_backed_round_trip(
    redis_gateway: Gateway, redis_server_url: str, stream: bool
) -> None:
    sid = new_session()
    openai_turn(redis_gateway, "mock-claude", sid, "stored in redis", stream=stream)
    recalled = anthropic_turn(redis_gateway, "mock-gpt", sid, "mock:recall", stream=stream)
    assert recalled == "Recall: stored in redis | mock:recall"
    client = redis.Redis.from_url(f"{redis_server_url}/15")
    try:
        assert client.llen(client.keys(f"rg:sess:*:{sid}")[0]) == 2
    finally:
        client.close()


@pytest.mark.redis
def test_redis_backed_concurrent_requests_keep_every_turn(redis_gateway: Gateway) -> None:
    sid = new_session()
    concurrent_turns(redis_gateway, sid, 8)
    texts = user_texts(session_of(redis_gateway, sid))
    assert sorted(texts) == sorted(f"turn {n}" for n in range(8))
