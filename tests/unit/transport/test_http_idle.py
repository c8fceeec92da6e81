"""HttpTransport against a real local aiohttp server: the idle timeout between body chunks;
the per-request connect timeout objects it keeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from relaygate.core.errors import UpstreamTimeoutError
from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import Timeouts
from relaygate.transport.http import MAX_CACHED_CONNECT_TIMEOUTS, HttpTransport


async def stalls_after_two_chunks(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for chunk in (b"data: one\n\n", b"data: two\n\n"):
        await response.write(chunk)
    await asyncio.sleep(30)
    return response


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/stall", stalls_after_two_chunks)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_stream_that_stalls_mid_way_ends_at_the_idle_timeout(base_url: str) -> None:
    transport = HttpTransport()
    try:
        request = UpstreamRequest("POST", f"{base_url}/stall", {}, b"{}")
        response = await transport.send(request, Timeouts(first_byte=5, total=30, idle=0.2))
        received = b""
        stalled: UpstreamTimeoutError | None = None
        started = asyncio.get_running_loop().time()
        try:
            async for chunk in response.chunks():  # the two chunks may come in one read
                received += chunk
        except UpstreamTimeoutError as exc:
            stalled = exc
        assert received == b"data: one\n\ndata: two\n\n"
        assert stalled is not None and "idle timeout" in stalled.message
        assert asyncio.get_running_loop().time() - started < 2.0
        response.close()
    finally:
        await transport.close()


def test_connect_timeouts_are_built_once_and_their_cache_stays_bounded() -> None:
    transport = HttpTransport()
    assert transport._connect_timeout(10.0) is transport._connect_timeout(10.0)
    for n in range(1_000):  # a deadline clips the connect timeout to any value
        assert transport._connect_timeout(n / 1000).sock_connect == n / 1000
    assert len(transport._connect_timeouts) <= MAX_CACHED_CONNECT_TIMEOUTS
