"""The bench's floor relay (``python -m bench.floor``) in front of the standalone mock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from bench.procs import Server, start_floor, start_mock

KEY = "floor-test-key"
MODEL = "floor-gpt"
URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("floor")
    mock = start_mock("mock", workdir, {"first-token-ms": 20, "stream-interval-ms": 30})
    try:
        relay = start_floor(workdir, [KEY], {MODEL: mock.base_url + "/v1"})
        try:
            yield relay
        finally:
            relay.stop()
    finally:
        mock.stop()


def _body(stream: bool = False, model: str = MODEL) -> bytes:
    return orjson.dumps(
        {
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": "mock:words 9"}],
        }
    )


def _headers(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


async def test_a_whole_answer_is_relayed(floor: Server) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(floor.base_url + URL, data=_body(), headers=_headers()) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "application/json"
        answer = orjson.loads(await resp.read())
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"]


async def test_a_stream_is_relayed_chunk_by_chunk(floor: Server) -> None:
    arrivals: list[float] = []
    data = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(floor.base_url + URL, data=_body(stream=True), headers=_headers()) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        async for chunk in resp.content.iter_any():
            arrivals.append(time.perf_counter())
            data += chunk
    events = [line for line in data.split(b"\n") if line.startswith(b"data:")]
    assert events[-1] == b"data: [DONE]"
    assert len(events) >= 5
    # The mock sends an event every 30 ms: a relay that buffered the stream would deliver it in
    # one or two reads at the end; chunk by chunk, the reads are spread over the whole stream.
    assert len(arrivals) >= len(events) - 1
    assert arrivals[-1] - arrivals[0] >= 0.03 * (len(events) - 3)


@pytest.mark.parametrize("key", ["wrong-key", ""])
async def test_a_bad_key_gets_401(floor: Server, key: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(floor.base_url + URL, data=_body(), headers=_headers(key)) as resp,
    ):
        assert resp.status == 401


async def test_an_unknown_model_gets_404(floor: Server) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(floor.base_url + URL, data=_body(model="nope"), headers=_headers()) as resp,
    ):
        assert resp.status == 404
