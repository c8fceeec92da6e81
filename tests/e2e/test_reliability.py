"""Retries, timeouts, breakers, failover and mid-stream failures, over real HTTP.

Three standalone ``relaygate mock serve`` processes (A, B, C) stand in for upstream deployments;
each test scripts their faults with ``PUT /mock/faults`` and reads what reached them with
``GET /mock/stats``. One gateway serves a model per scenario, each with its own deployment names,
so breaker state never leaks from one test into another.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import MOCKS, Gateway, MockServer, fault, start_gateway, stats, stop

# The fixtures ``mocks`` (A, B, C), ``http`` and ``clean_mocks`` live in conftest.py.
pytestmark = pytest.mark.usefixtures("clean_mocks")


FAST_BACKOFF = {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2}


def _dep(name: str, url: str, wire: str = "openai", **extra: Any) -> dict[str, Any]:
    base = f"{url}/v1" if wire == "openai" else url
    return {"provider": wire, "name": name, "base_url": base, **extra}


def _model(name: str, deps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "deployments": deps, **extra}


def _config(urls: dict[str, str]) -> dict[str, Any]:
    """One model per scenario; every deployment name is unique, so are its breaker and stats."""
    a, b, c = urls["a"], urls["b"], urls["c"]
    once = {"attempts_per_deployment": 1}
    models = [
        _model("r429", [_dep("r429-a", a)], routing={"attempts_per_deployment": 2, **FAST_BACKOFF}),
        _model("r500", [_dep("r500-a", a)], routing={"attempts_per_deployment": 3, **FAST_BACKOFF}),
        _model(
            "fo",
            [_dep("fo-a", a, breaker={"consecutive_failures": 100}), _dep("fo-b", b)],
            routing={"strategy": "ordered", **once},
        ),
        _model("fb", [_dep("fb-a", a), _dep("fb-b", b)], fallbacks=["fb-backup"], routing=once),
        _model("fb-backup", [_dep("fb-c", c, "anthropic")]),
        _model(
            "down",
            [_dep("down-a", a), _dep("down-b", b, "anthropic")],
            fallbacks=["down-backup"],
            routing={"attempts_per_deployment": 2, **FAST_BACKOFF},
        ),
        _model("down-backup", [_dep("down-c", c)], routing=once),
        _model(
            "hang",
            [_dep("hang-a", a, timeouts={"first_byte": 0.4})],
            routing={"deadline_seconds": 1.2, "attempts_per_deployment": 5, **FAST_BACKOFF},
        ),
        _model("drop", [_dep("drop-o", a)]),
        _model("drop-claude", [_dep("drop-an", a, "anthropic")]),
        _model(
            "brk",
            [
                _dep("brk-a", a, breaker={"consecutive_failures": 3, "cooldown_seconds": 1.0}),
                _dep("brk-b", b),
            ],
            routing={"strategy": "ordered", **once},
        ),
    ]
    return {"models": models}


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, mocks: dict[str, MockServer]
) -> Iterator[Gateway]:
    home: Path = tmp_path_factory.mktemp("reliability-home")
    config = home / "relaygate.yaml"
    config.write_text(yaml.safe_dump(_config({name: m.base_url for name, m in mocks.items()})))
    gw = start_gateway(home, config=config)
    yield gw
    stop(gw.process)


def chat(http: httpx.Client, model: str, content: str = "hi") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return http.post("/v1/chat/completions", json=body)


def message(http: httpx.Client, model: str, content: str = "hi") -> httpx.Response:
    body = {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": content}]}
    return http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})


def request_log(gateway: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in gateway.log().splitlines():
            if request_id in line and '"msg":"request"' in line:
                entry: dict[str, Any] = json.loads(line)
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no request log line for {request_id}")


def test_429_with_retry_after_then_success(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "429", first_n=1, retry_after=0.5)
    started = time.monotonic()
    response = chat(http, "r429")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.headers["x-relaygate-attempts"] == "2"
    assert elapsed >= 0.5  # Retry-After honoured
    assert stats(mocks, "a")["by_status"] == {"429": 1, "200": 1}


def test_500_twice_then_success(http: httpx.Client, mocks: dict[str, MockServer]) -> None:
    fault(mocks, "a", "500", first_n=2)
    response = chat(http, "r500")
    assert response.status_code == 200, response.text
    assert response.headers["x-relaygate-attempts"] == "3"
    assert response.headers["x-relaygate-model"] == "r500"
    assert stats(mocks, "a")["by_status"] == {"500": 2, "200": 1}


def test_529_on_one_deployment_fails_over_to_the_other(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "529")
    for _ in range(3):
        response = chat(http, "fo")
        assert response.status_code == 200, response.text
        assert response.headers["x-relaygate-attempts"] == "2"
    assert stats(mocks, "a")["by_status"] == {"529": 3}
    assert stats(mocks, "b")["by_status"] == {"200": 3}


def test_every_deployment_down_then_the_fallback_model_answers(
    http: httpx.Client, mocks: dict[str, MockServer], gateway: Gateway
) -> None:
    fault(mocks, "a", "500")
    fault(mocks, "b", "529")
    response = chat(http, "fb", "which model?")
    assert response.status_code == 200, response.text
    assert response.headers["x-relaygate-model"] == "fb-backup"
    assert response.headers["x-relaygate-attempts"] == "3"
    assert "which model?" in response.json()["choices"][0]["message"]["content"]
    log = request_log(gateway, response.headers["x-request-id"])
    assert log["model"] == "fb" and log["model_used"] == "fb-backup" and log["attempts"] == 3
    row = ledger_row(gateway, response.headers["x-request-id"])
    assert (row["model_used"], row["deployment"], row["attempts"]) == ("fb-backup", "fb-c", 3)
    tried = [entry.split(":") for entry in row["attempt_log"].split(",")]
    assert sorted(t[0] for t in tried[:2]) == ["fb-a", "fb-b"]
    assert tried[2][:3] == ["fb-c", "ok", "200"]


def test_all_down_is_a_fast_503_in_each_dialect_listing_the_attempts(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    for name in MOCKS:
        fault(mocks, name, "500")
    started = time.monotonic()
    openai_reply = chat(http, "down")
    anthropic_reply = message(http, "down")
    assert time.monotonic() - started < 2.0
    assert openai_reply.status_code == 503
    error = openai_reply.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "service_unavailable"
    for tried in ("down-a: upstream 500", "down-b: upstream 500", "down-c: upstream 500"):
        assert tried in error["message"]
    assert anthropic_reply.status_code == 503
    body = anthropic_reply.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "down-c: upstream 500" in body["error"]["message"]
    # Two passes over two deployments, then the fallback, per request.
    assert stats(mocks, "a")["requests"] == 4 and stats(mocks, "c")["requests"] == 2


def test_hang_becomes_a_504_within_the_deadline(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "hang")
    started = time.monotonic()
    response = chat(http, "hang")
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "timeout"
    assert 0.4 <= elapsed < 1.2 + 0.4
    assert stats(mocks, "a")["requests"] == 1  # a first-byte timeout is not retried


def test_stream_fails_over_before_the_first_byte(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "529")
    body = {
        "model": "fo",
        "stream": True,
        "messages": [{"role": "user", "content": "mock:words 9"}],
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["x-relaygate-attempts"] == "2"
    events = sse_events(response)
    assert events[-1][1] == "[DONE]"
    text = "".join(
        json.loads(data)["choices"][0]["delta"].get("content") or ""
        for _, data in events[:-1]
        if json.loads(data)["choices"]
    )
    assert len(text.split()) == 9
    assert stats(mocks, "a")["by_status"] == {"529": 1}


def ledger_row(gateway: Gateway, request_id: str) -> dict[str, Any]:
    """The request's usage-ledger row, once the batched writer has flushed it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(gateway.home / "relaygate.db")) as db:
            db.row_factory = sqlite3.Row
            found = db.execute(
                "SELECT * FROM usage_ledger WHERE request_id = ?", (request_id,)
            ).fetchone()
        if found is not None:
            return dict(found)
        time.sleep(0.1)
    raise AssertionError(f"no ledger row for {request_id}")


def sse_events(response: httpx.Response) -> list[tuple[str | None, str]]:
    events: list[tuple[str | None, str]] = []
    for block in response.text.split("\n\n"):
        name, data = None, ""
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
        if data:
            events.append((name, data))
    return events


def test_drop_mid_stream_sends_an_anthropic_error_event(
    http: httpx.Client, gateway: Gateway
) -> None:
    body = {
        "model": "drop-claude",
        "max_tokens": 500,
        "stream": True,
        "messages": [{"role": "user", "content": "mock:words 60 mock:fault drop"}],
    }
    response = http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200
    events = sse_events(response)
    names = [name for name, _ in events]
    assert "content_block_delta" in names and "message_stop" not in names
    assert names[-1] == "error"
    assert json.loads(events[-1][1])["type"] == "error"
    log = request_log(gateway, response.headers["x-request-id"])
    assert log["outcome"] == "partial" and log["status"] == 200
    row = ledger_row(gateway, response.headers["x-request-id"])
    assert row["outcome"] == "partial" and row["deployment"] == "drop-an"
    assert row["attempts"] == 1 and row["error_kind"] == "unavailable"


def test_drop_mid_stream_sends_an_openai_error_chunk(http: httpx.Client, gateway: Gateway) -> None:
    body = {
        "model": "drop",
        "stream": True,
        "messages": [{"role": "user", "content": "mock:words 60 mock:fault drop"}],
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    events = sse_events(response)
    assert any("choices" in data for _, data in events)
    assert events[-1][1] != "[DONE]"
    assert "error" in json.loads(events[-1][1])
    log = request_log(gateway, response.headers["x-request-id"])
    assert log["outcome"] == "partial"
    assert ledger_row(gateway, response.headers["x-request-id"])["outcome"] == "partial"


def breaker_state(http: httpx.Client, deployment: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f'relaygate_breaker_state{{deployment="{deployment}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no breaker gauge for {deployment}")


def test_breaker_opens_probes_and_recovers(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "529")  # overloaded: opens this deployment's breaker, not the key
    for _ in range(3):
        assert chat(http, "brk").headers["x-relaygate-attempts"] == "2"
    assert stats(mocks, "a")["requests"] == 3
    assert breaker_state(http, "brk-a") == 2  # open
    for _ in range(5):
        response = chat(http, "brk")
        assert response.status_code == 200
        assert response.headers["x-relaygate-attempts"] == "1"
    assert stats(mocks, "a")["requests"] == 3  # nothing reached the open deployment
    fault(mocks, "a", "none")
    fault(mocks, "b", "none")
    time.sleep(1.1)  # waits out the breaker's 1 s cooldown: the behaviour under test
    probe = chat(http, "brk")
    assert probe.status_code == 200 and probe.headers["x-relaygate-attempts"] == "1"
    assert stats(mocks, "a")["requests"] == 1  # the single half-open probe
    assert breaker_state(http, "brk-a") == 0  # closed again
    for _ in range(3):
        chat(http, "brk")
    assert stats(mocks, "a")["requests"] == 4 and stats(mocks, "b")["requests"] == 0
    metrics = http.get("/metrics").text
    for state in ("open", "half_open", "closed"):
        assert (
            f'relaygate_breaker_transitions_total{{deployment="brk-a",state="{state}"}}' in metrics
        )
