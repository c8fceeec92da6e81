"""Issue 8 over real HTTP: a lone deployment rides out a transient 429, a hung upstream costs one
first-byte timeout, a stalled stream ends at the idle timeout, and breakers never blackhole.

Upstreams: standalone mocks (A and B) scripted with ``PUT /mock/faults``, and a tiny aiohttp
server in a thread for what the mock cannot do: a stream that stalls after two chunks, and one
that sends its head and then nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from aiohttp import web

from tests.e2e.server import Gateway, MockServer, fault, start_gateway, stats, stop
from tests.e2e.test_reliability import (
    _dep,
    _model,
    breaker_state,
    chat,
    ledger_row,
    message,
    request_log,
    sse_events,
)
from tests.unit.relay.test_stream_pump import chunk as openai_chunk

# The fixtures ``mocks`` (A, B, C), ``http`` and ``clean_mocks`` live in conftest.py.
pytestmark = pytest.mark.usefixtures("clean_mocks")
STALL_SECONDS = 30.0


async def stalls_after_two_chunks(request: web.Request) -> web.StreamResponse:
    await request.read()
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for text in ("Hello", " there"):
        await response.write(openai_chunk(text))
    await asyncio.sleep(STALL_SECONDS)
    return response


async def sends_only_its_head(request: web.Request) -> web.StreamResponse:
    await request.read()
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await asyncio.sleep(STALL_SECONDS)
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STALLING: dict[str, Handler] = {
    "/stall/v1/chat/completions": stalls_after_two_chunks,
    "/silent/v1/chat/completions": sends_only_its_head,
}


class ScriptedUpstream:
    """An upstream answering POSTs to ``routes`` (path -> handler) on its own event loop in a
    daemon thread."""

    def __init__(self, routes: dict[str, Handler] = STALLING) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_post(path, handler)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        self.base_url = self._call(self._start())

    async def _start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _config(urls: dict[str, str], scripted: str) -> dict[str, Any]:
    a, b = urls["a"], urls["b"]
    once = {"attempts_per_deployment": 1}
    stall_timeouts = {"first_byte": 5, "idle": 0.3}
    models = [
        _model("lone429", [_dep("lone429-a", a)]),  # default routing: the point of the test
        _model("hung", [_dep("hung-a", a, timeouts={"first_byte": 0.5})]),
        _model(
            "hung2",
            [_dep("hung2-a", a, timeouts={"first_byte": 0.5}), _dep("hung2-b", b)],
            routing={"strategy": "ordered", "deadline_seconds": 0.9},
        ),
        _model("stall", [_dep("stall-s", f"{scripted}/stall", timeouts=stall_timeouts)]),
        _model(
            "silent",
            [_dep("silent-s", f"{scripted}/silent", timeouts=stall_timeouts), _dep("silent-b", b)],
            routing={"strategy": "ordered", **once},
        ),
        _model(
            "silent-fb",
            [
                _dep("silent-fb-s", f"{scripted}/silent", timeouts={"first_byte": 0.5, "idle": 5}),
                _dep("silent-fb-b", b),
            ],
            routing={"strategy": "ordered", **once},
        ),
        _model(
            "panic",
            [_dep("panic-a", a, breaker={"consecutive_failures": 2, "cooldown_seconds": 30})],
            routing=once,
        ),
        _model(
            "rl",
            [
                _dep("rl-a", a, breaker={"consecutive_failures": 1}),
                _dep("rl-b", b, breaker={"consecutive_failures": 1}),
            ],
            routing={"strategy": "ordered", **once},
        ),
        _model(
            "rl-lone",
            [_dep("rl-lone-a", a, breaker={"consecutive_failures": 2})],
            routing={**once, "max_retry_after_seconds": 0.1},
        ),
    ]
    return {"models": models}


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedUpstream]:
    upstream = ScriptedUpstream()
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    mocks: dict[str, MockServer],
    scripted: ScriptedUpstream,
) -> Iterator[Gateway]:
    home: Path = tmp_path_factory.mktemp("resilience-home")
    config = home / "relaygate.yaml"
    urls = {name: m.base_url for name, m in mocks.items()}
    config.write_text(yaml.safe_dump(_config(urls, scripted.base_url)))
    gw = start_gateway(home, config=config)
    yield gw
    stop(gw.process)


def metric(http: httpx.Client, prefix: str) -> float | None:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


def test_lone_deployment_rides_out_a_transient_429(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "429", first_n=2, retry_after=1)
    started = time.monotonic()
    response = chat(http, "lone429")
    assert response.status_code == 200, response.text
    assert response.headers["x-relaygate-attempts"] == "3"
    assert time.monotonic() - started >= 2.0  # each Retry-After: 1 honoured
    assert stats(mocks, "a")["by_status"] == {"429": 2, "200": 1}


def test_a_hung_upstream_costs_one_first_byte_timeout(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "hang")
    started = time.monotonic()
    response = chat(http, "hung")
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert 0.5 <= elapsed < 0.9
    assert stats(mocks, "a")["requests"] == 1


def test_no_failover_into_an_attempt_the_deadline_would_cut(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "hang")
    response = chat(http, "hung2")
    assert response.status_code == 504, response.text
    assert stats(mocks, "b")["requests"] == 0  # 0.4 s left < b's first-byte timeout


def test_a_stream_that_stalls_mid_way_ends_at_the_idle_timeout(
    http: httpx.Client, gateway: Gateway
) -> None:
    body = {"model": "stall", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    response = http.post("/v1/chat/completions", json=body)
    assert time.monotonic() - started < 3.0
    assert response.status_code == 200
    events = sse_events(response)
    text = "".join(
        orjson.loads(data)["choices"][0]["delta"].get("content") or ""
        for _, data in events[:-1]
        if orjson.loads(data).get("choices")
    )
    assert text == "Hello there"
    error = orjson.loads(events[-1][1])["error"]
    assert "idle timeout" in error["message"]
    request_id = response.headers["x-request-id"]
    assert request_log(gateway, request_id)["outcome"] == "partial"
    row = ledger_row(gateway, request_id)
    assert (row["outcome"], row["error_kind"], row["deployment"]) == (
        "partial",
        "timeout",
        "stall-s",
    )
    assert row["attempt_log"].startswith("stall-s:partial:200:")


def test_a_stalled_stream_sends_an_anthropic_error_event(http: httpx.Client) -> None:
    body = {
        "model": "stall",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    started = time.monotonic()
    response = http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert time.monotonic() - started < 3.0
    events = sse_events(response)
    names = [name for name, _ in events]
    assert "content_block_delta" in names and "message_stop" not in names
    assert names[-1] == "error"
    assert "idle timeout" in orjson.loads(events[-1][1])["error"]["message"]


def test_idle_before_the_first_byte_is_a_failed_attempt_that_fails_over(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    body = {"model": "silent", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    response = http.post("/v1/chat/completions", json=body)
    assert time.monotonic() - started < 3.0  # the idle timeout (0.3 s), not first_byte (5 s)
    assert response.status_code == 200
    assert response.headers["x-relaygate-attempts"] == "2"
    assert sse_events(response)[-1][1] == "[DONE]"
    assert stats(mocks, "b")["requests"] == 1


def test_a_stream_with_a_head_but_no_data_by_the_first_byte_timeout_fails_over(
    http: httpx.Client, mocks: dict[str, MockServer], gateway: Gateway
) -> None:
    body = {"model": "silent-fb", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    response = http.post("/v1/chat/completions", json=body)
    assert 0.5 <= time.monotonic() - started < 3.0  # first_byte (0.5 s) from the send, not idle
    assert response.status_code == 200
    assert response.headers["x-relaygate-attempts"] == "2"
    assert sse_events(response)[-1][1] == "[DONE]"
    row = ledger_row(gateway, response.headers["x-request-id"])
    assert row["attempt_log"].startswith("silent-fb-s:timeout:")


def test_an_open_breaker_on_a_lone_deployment_is_no_outage(
    http: httpx.Client, mocks: dict[str, MockServer], gateway: Gateway
) -> None:
    fault(mocks, "a", "500")
    for _ in range(2):
        assert chat(http, "panic").status_code == 502
    assert breaker_state(http, "panic-a") == 2  # open
    fault(mocks, "a", "none")
    response = chat(http, "panic")
    assert response.status_code == 200, response.text  # healthy panic: sent anyway
    assert stats(mocks, "a")["requests"] == 1
    assert breaker_state(http, "panic-a") == 0  # and its answer closed the breaker
    assert metric(http, 'relaygate_breaker_panic_total{model="panic"}') == 1.0
    assert "healthy panic" in gateway.log()


def test_every_deployment_rate_limited_is_a_429_not_a_503(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "429", retry_after=1)
    fault(mocks, "b", "429", retry_after=2)
    for dialect_call in (chat, message):
        response = dialect_call(http, "rl", "hi")
        assert response.status_code == 429, response.text
        assert response.headers["retry-after"] == "2"  # the largest
    assert breaker_state(http, "rl-a") == 0 and breaker_state(http, "rl-b") == 0


def test_rate_limits_never_blackhole_a_lone_deployment(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "429", retry_after=0.2)
    for _ in range(4):
        response = chat(http, "rl-lone")
        assert response.status_code == 429, response.text
    assert breaker_state(http, "rl-lone-a") == 0
    fault(mocks, "a", "none")
    time.sleep(0.25)  # the last Retry-After
    assert chat(http, "rl-lone").status_code == 200
