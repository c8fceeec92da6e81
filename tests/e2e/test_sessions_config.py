"""Sessions under configuration: a model's own turn limit, a stream the caller abandons, and a
Redis that cannot be reached (503 for session requests; everything else still served)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import Gateway, start_gateway, stop
from tests.waiting import wait_until

HEADER = "x-relaygate-session"
CONFIG: dict[str, Any] = {
    "cache": {"enabled": True},
    "models": [
        {
            "name": "slow",
            "deployments": [{"provider": "mock", "mock": {"stream_interval_ms": 100}}],
        },
        {"name": "short", "deployments": [{"provider": "mock"}], "sessions": {"max_turns": 2}},
    ],
}


def started(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str] | None = None) -> Gateway:
    home = tmp_path_factory.mktemp("sessions-config-home")
    config = home / "sessions.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    return start_gateway(home, config=config, env=env)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = started(tmp_path_factory)
    yield gw
    stop(gw.process)


def chat(gw: Gateway, model: str, sid: str | None, text: str) -> httpx.Response:
    body = {"model": model, "temperature": 0, "messages": [{"role": "user", "content": text}]}
    headers = {"authorization": f"Bearer {gw.api_key}"}
    if sid is not None:
        headers[HEADER] = sid
    return httpx.post(f"{gw.base_url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def said(gw: Gateway, sid: str) -> list[str]:
    headers = {"authorization": f"Bearer {gw.api_key}"}
    got = httpx.get(f"{gw.base_url}/v1/sessions/{sid}", headers=headers)
    assert got.status_code == 200, got.text
    return [t["messages"][0]["content"][0]["text"] for t in got.json()["turns"]]


def answer(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    text: str = response.json()["choices"][0]["message"]["content"]
    return text


def test_the_models_turn_limit_applies(gateway: Gateway) -> None:
    sid = uuid.uuid4().hex
    for text in ("one", "two", "three"):
        answer(chat(gateway, "short", sid, text))
    assert said(gateway, sid) == ["two", "three"]
    assert answer(chat(gateway, "short", sid, "mock:recall")) == "Recall: two | three | mock:recall"


def test_session_requests_skip_the_response_cache(gateway: Gateway) -> None:
    question = f"is the coupon valid? {uuid.uuid4().hex}"
    assert chat(gateway, "short", None, question).headers["x-relaygate-cache"] == "miss"
    assert chat(gateway, "short", None, question).headers["x-relaygate-cache"] == "hit"
    # The same body in a session is not answered from the cache: its turn must be recorded.
    sid = uuid.uuid4().hex
    answered = chat(gateway, "short", sid, question)
    assert answered.status_code == 200
    assert answered.headers["x-relaygate-cache"] == "skip"
    assert said(gateway, sid) == [question]


def in_flight(gw: Gateway) -> float:
    for line in httpx.get(f"{gw.base_url}/metrics").text.splitlines():
        if line.startswith("relaygate_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("no in-flight gauge")


def test_a_stream_the_caller_abandons_leaves_the_session_unchanged(gateway: Gateway) -> None:
    sid = uuid.uuid4().hex
    answer(chat(gateway, "slow", sid, "kept"))
    body = {
        "model": "slow",
        "stream": True,
        "messages": [{"role": "user", "content": "long mock:words 150"}],
    }
    headers = {"authorization": f"Bearer {gateway.api_key}", HEADER: sid}
    url = f"{gateway.base_url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        assert next(response.iter_bytes())  # the stream began; the caller then goes away
    # The gateway noticed and stopped (the whole stream would take ~5 s more).
    wait_until(lambda: in_flight(gateway) == 0, timeout=20, what="abandoned stream ended")
    assert said(gateway, sid) == ["kept"]


@pytest.fixture(scope="module")
def redis_down_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = sock.getsockname()[1]
        gw = started(tmp_path_factory, env={"RELAYGATE_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
        yield gw
        stop(gw.process)


def test_redis_down_refuses_session_requests_in_the_callers_dialect(
    redis_down_gateway: Gateway,
) -> None:
    gw = redis_down_gateway
    refused = chat(gw, "short", "s1", "hello")
    assert refused.status_code == 503
    assert "session store" in refused.json()["error"]["message"]
    body = {"model": "short", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": gw.api_key, "anthropic-version": "2023-06-01", HEADER: "s1"}
    refused = httpx.post(f"{gw.base_url}/v1/messages", json=body, headers=headers)
    assert refused.status_code == 503 and refused.json()["type"] == "error"
    plain = {"model": "short", "messages": [{"role": "user", "content": "no session"}]}
    served = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        json=plain,
        headers={"authorization": f"Bearer {gw.api_key}"},
        timeout=30,
    )
    assert served.status_code == 200
