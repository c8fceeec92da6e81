"""The mock ASGI app over the in-process transport: both wires, faults, limits, controls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from relaygate.core.errors import UpstreamError, UpstreamTimeoutError
from relaygate.core.sse import SSEDecoder, SSEFrame
from relaygate.mock.app import create_mock_app
from relaygate.providers.base import UpstreamRequest
from relaygate.settings.model import MockFaultSettings, MockSettings
from relaygate.transport.base import Timeouts
from relaygate.transport.inprocess import InProcessResponse, InProcessTransport

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
WEATHER_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_ANTHROPIC = {"name": "get_weather", "input_schema": {"type": "object"}}


def openai_body(text: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"model": "mock-gpt", "messages": [{"role": "user", "content": text}], **fields}


def anthropic_body(text: str = "hello", **fields: Any) -> dict[str, Any]:
    return {
        "model": "mock-claude",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


class Client:
    def __init__(self, settings: MockSettings | None = None, seed: int | None = 1) -> None:
        self.transport = InProcessTransport(create_mock_app(settings or MockSettings(), seed))

    async def send(
        self,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        method: str = "POST",
        timeouts: Timeouts | None = None,
    ) -> InProcessResponse:
        data = body if isinstance(body, bytes) else orjson.dumps(body) if body is not None else b""
        request = UpstreamRequest(method, f"http://mock.test{path}", headers or {}, data)
        return await self.transport.send(request, timeouts or Timeouts(first_byte=5, total=10))

    async def json(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        response = await self.send(path, body, **kwargs)
        return response.status, orjson.loads(await response.read())

    async def frames(self, path: str, body: Any, **kwargs: Any) -> list[SSEFrame]:
        response = await self.send(path, body, **kwargs)
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        decoder = SSEDecoder()
        frames = [f async for part in response.chunks() for f in decoder.feed(part)]
        return frames + decoder.finish()


@pytest.fixture
def client() -> Client:
    return Client()


def openai_stream_text(frames: list[SSEFrame]) -> str:
    assert frames[-1].data == "[DONE]"
    chunks = [orjson.loads(f.data) for f in frames[:-1]]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def test_openai_whole_answer(client: Client) -> None:
    status, body = await client.json(OPENAI, openai_body("hi there"))
    assert status == 200
    assert body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    assert message["content"] == "Hello from the relaygate mock. You said: hi there"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] >= 1
    assert body["usage"]["completion_tokens"] == 9


async def test_openai_stream_matches_the_whole_answer(client: Client) -> None:
    _, whole = await client.json(OPENAI, openai_body("mock:words 20"))
    frames = await client.frames(
        OPENAI, openai_body("mock:words 20", stream=True, stream_options={"include_usage": True})
    )
    assert openai_stream_text(frames) == whole["choices"][0]["message"]["content"]
    assert len(frames) > 8
    usage = orjson.loads(frames[-2].data)["usage"]
    assert usage["completion_tokens"] == 20


async def test_openai_tool_call(client: Client) -> None:
    body = openai_body('mock:tool get_weather {"city": "Oslo"}', tools=[WEATHER_OPENAI])
    _, answer = await client.json(OPENAI, body)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Oslo"}


async def test_anthropic_stream_event_sequence_with_thinking(client: Client) -> None:
    body = anthropic_body("think", stream=True, thinking={"type": "enabled", "budget_tokens": 1024})
    frames = await client.frames(ANTHROPIC, body)
    names = [f.event for f in frames]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = [orjson.loads(f.data) for f in frames if f.event == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["thinking", "text"]
    deltas = [orjson.loads(f.data)["delta"] for f in frames if f.event == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"thinking_delta", "signature_delta", "text_delta"}


async def test_anthropic_stream_matches_the_whole_answer(client: Client) -> None:
    body = anthropic_body('mock:tool get_weather {"city": "Rome"}', tools=[WEATHER_ANTHROPIC])
    _, whole = await client.json(ANTHROPIC, body)
    frames = await client.frames(ANTHROPIC, {**body, "stream": True})
    text = "".join(
        orjson.loads(f.data)["delta"].get("text", "")
        for f in frames
        if f.event == "content_block_delta"
    )
    args = "".join(
        orjson.loads(f.data)["delta"].get("partial_json", "")
        for f in frames
        if f.event == "content_block_delta"
    )
    assert whole["stop_reason"] == "tool_use"
    assert text == whole["content"][0]["text"]
    assert orjson.loads(args) == whole["content"][1]["input"] == {"city": "Rome"}
    final = orjson.loads(frames[-2].data)
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["output_tokens"] == whole["usage"]["output_tokens"]


async def test_count_tokens(client: Client) -> None:
    small = await client.json(
        "/v1/messages/count_tokens", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )
    large = await client.json(
        "/v1/messages/count_tokens",
        {"model": "m", "messages": [{"role": "user", "content": "hi " * 500}]},
    )
    assert small[0] == large[0] == 200
    assert 1 <= small[1]["input_tokens"] < large[1]["input_tokens"]


async def test_models_listing_fits_both_sdks(client: Client) -> None:
    status, body = await client.json("/v1/models", method="GET")
    assert status == 200
    assert body["object"] == "list"
    assert {"mock-gpt", "mock-claude"} <= {m["id"] for m in body["data"]}
    assert all(m["type"] == "model" and m["owned_by"] for m in body["data"])


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nope", 404), ("GET", OPENAI, 405), ("DELETE", "/mock/stats", 404)],
)
async def test_unknown_routes(client: Client, method: str, path: str, status: int) -> None:
    got, body = await client.json(path, method=method)
    assert got == status
    assert body["error"]["message"]


async def test_bad_requests_answer_in_the_wire_error_format(client: Client) -> None:
    status, body = await client.json(OPENAI, {"model": "m", "messages": []})
    assert status == 400
    assert body["error"]["param"] == "messages"
    status, body = await client.json(ANTHROPIC, {"model": "m", "messages": "x"})
    assert status == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    status, body = await client.json(ANTHROPIC, b"{not json")
    assert status == 400


@pytest.mark.parametrize(
    ("path", "body", "error_type"),
    [(OPENAI, openai_body(), "server_error"), (ANTHROPIC, anthropic_body(), "overloaded_error")],
)
async def test_fault_529_in_each_wire(
    client: Client, path: str, body: dict[str, Any], error_type: str
) -> None:
    status, answer = await client.json(path, body, headers={"x-mock-fault": "529"})
    assert status == 529
    error = answer["error"]
    assert error["type"] == error_type


async def test_fault_429_carries_retry_after() -> None:
    client = Client(MockSettings(fault=MockFaultSettings(retry_after=7)))
    response = await client.send(ANTHROPIC, anthropic_body(), headers={"x-mock-fault": "429"})
    assert response.status == 429
    assert response.headers["retry-after"] == "7"
    assert orjson.loads(await response.read())["error"]["type"] == "rate_limit_error"


async def test_fault_500_from_the_prompt_directive(client: Client) -> None:
    status, body = await client.json(OPENAI, openai_body("please mock:fault 500"))
    assert status == 500
    assert body["error"]["type"] == "server_error"


async def test_unknown_fault_header_is_a_bad_request(client: Client) -> None:
    status, body = await client.json(OPENAI, openai_body(), headers={"x-mock-fault": "teapot"})
    assert status == 400
    assert body["error"]["param"] == "x-mock-fault"


@pytest.mark.parametrize("stream", [False, True])
async def test_fault_hang_times_out_and_frees_itself(client: Client, stream: bool) -> None:
    with pytest.raises(UpstreamTimeoutError):
        await client.send(
            ANTHROPIC,
            anthropic_body(stream=stream),
            headers={"x-mock-fault": "hang"},
            timeouts=Timeouts(first_byte=0.05),
        )
    async with asyncio.timeout(5):  # the hung handler is cancelled just after the timeout
        while (await client.json("/mock/stats", method="GET"))[1]["in_flight"]:
            await asyncio.sleep(0.01)
    _, stats = await client.json("/mock/stats", method="GET")
    assert stats["in_flight"] == 0


async def test_fault_drop_stream_sends_some_events_then_breaks(client: Client) -> None:
    response = await client.send(
        OPENAI, openai_body("mock:words 30", stream=True), headers={"x-mock-fault": "drop"}
    )
    assert response.status == 200
    received: list[bytes] = []

    async def drain() -> None:
        async for part in response.chunks():
            received.append(part)

    with pytest.raises(UpstreamError) as caught:
        await drain()
    assert caught.value.retryable
    assert received
    assert b"[DONE]" not in b"".join(received)


async def test_fault_drop_whole_breaks_the_body(client: Client) -> None:
    response = await client.send(ANTHROPIC, anthropic_body(), headers={"x-mock-fault": "drop"})
    assert response.status == 200
    with pytest.raises(UpstreamError):
        await response.read()


@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_fault_malformed_whole(client: Client, path: str) -> None:
    body = openai_body() if path == OPENAI else anthropic_body()
    response = await client.send(path, body, headers={"x-mock-fault": "malformed"})
    assert response.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(await response.read())


@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_fault_malformed_stream(client: Client, path: str) -> None:
    body = openai_body(stream=True) if path == OPENAI else anthropic_body(stream=True)
    frames = await client.frames(path, body, headers={"x-mock-fault": "malformed"})
    broken = 0
    for frame in frames:
        try:
            orjson.loads(frame.data)
        except orjson.JSONDecodeError:
            broken += 1
    assert broken == 1
    assert frames[-1].event != "message_stop"


async def test_count_tokens_honours_the_fault_header(client: Client) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    status, _ = await client.json(
        "/v1/messages/count_tokens", body, headers={"x-mock-fault": "500"}
    )
    assert status == 500
    response = await client.send(
        "/v1/messages/count_tokens", body, headers={"x-mock-fault": "drop"}
    )
    with pytest.raises(UpstreamError):
        await response.read()


async def test_put_faults_first_n_then_success(client: Client) -> None:
    status, body = await client.json("/mock/faults", {"kind": "500", "first_n": 2}, method="PUT")
    assert status == 200
    assert body["first_n"] == 2
    statuses = [(await client.send(OPENAI, openai_body())).status for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    _, current = await client.json("/mock/faults", method="GET")
    assert current["kind"] == "500"


async def test_put_faults_rejects_bad_settings(client: Client) -> None:
    status, body = await client.json("/mock/faults", {"kind": "boom", "rate": 3}, method="PUT")
    assert status == 400
    assert "kind" in body["error"]["message"]
    assert "rate" in body["error"]["message"]


async def test_seeded_rates_repeat() -> None:
    fault = MockFaultSettings(kind="500", rate=0.5)

    async def run(seed: int) -> list[int]:
        client = Client(MockSettings(fault=fault), seed=seed)
        return [(await client.send(OPENAI, openai_body())).status for _ in range(40)]

    first, second = await run(3), await run(3)
    assert first == second
    assert 5 < first.count(500) < 35


async def test_stats_count_and_reset(client: Client) -> None:
    await client.json(OPENAI, openai_body())
    await client.json(ANTHROPIC, anthropic_body())
    await client.json(ANTHROPIC, anthropic_body(), headers={"x-mock-fault": "429"})
    await client.json("/v1/models", method="GET")
    _, stats = await client.json("/mock/stats", method="GET")
    assert stats == {
        "requests": 3,
        "by_path": {OPENAI: 1, ANTHROPIC: 2},
        "by_status": {"200": 2, "429": 1},
        "in_flight": 0,
        "max_in_flight": 1,
    }
    _, reset = await client.json("/mock/stats/reset", method="POST")
    assert reset["requests"] == 0
    assert reset["by_path"] == {}


async def test_max_concurrency_refuses_the_excess() -> None:
    client = Client(MockSettings(latency_ms=100, max_concurrency=2))
    responses = await asyncio.gather(*(client.send(OPENAI, openai_body()) for _ in range(5)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 200, 429, 429, 429]
    refused = next(r for r in responses if r.status == 429)
    assert refused.headers["retry-after"] == "1"
    _, stats = await client.json("/mock/stats", method="GET")
    assert stats["max_in_flight"] >= 3
    assert (await client.send(OPENAI, openai_body())).status == 200


async def test_latency_delays_the_whole_answer() -> None:
    client = Client(MockSettings(latency_ms=60, latency_jitter_ms=10))
    began = time.perf_counter()
    response = await client.send(OPENAI, openai_body())
    assert response.status == 200
    assert time.perf_counter() - began >= 0.045


async def test_stream_pacing() -> None:
    client = Client(MockSettings(first_token_ms=50, stream_interval_ms=10))
    began = time.perf_counter()
    response = await client.send(ANTHROPIC, anthropic_body("mock:words 9", stream=True))
    head = time.perf_counter() - began
    parts = [part async for part in response.chunks()]
    total = time.perf_counter() - began
    assert head >= 0.045
    # message_start, block start and the first delta come at once; then a pause before each part.
    assert len(parts) == 8
    assert total - head >= 0.009 * (len(parts) - 3)


async def test_lifespan_is_acknowledged() -> None:
    app = create_mock_app(MockSettings())
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
