"""InProcessTransport: ASGI app called directly, with the HTTP transport's timeouts and errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest

from relaygate.core.errors import UpstreamError, UpstreamTimeoutError
from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import Timeouts
from relaygate.transport.inprocess import InProcessTransport

Scope = MutableMapping[str, Any]


def post(path: str = "/x?a=1", body: bytes = b"{}") -> UpstreamRequest:
    return UpstreamRequest(
        "POST", f"http://upstream.test:8080{path}", {"Content-Type": "application/json"}, body
    )


async def start(send: Any, status: int = 200, headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})


class Recorder:
    """An app that echoes what it received and can be told how to misbehave."""

    def __init__(self) -> None:
        self.scope: Scope = {}
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()

    async def echo(self, scope: Scope, receive: Any, send: Any) -> None:
        self.scope = scope
        message = await receive()
        await start(send, 201, [(b"X-One", b"a"), (b"x-one", b"b")])
        await send({"type": "http.response.body", "body": message["body"], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        await send({"type": "http.response.body", "body": b"|end", "more_body": False})

    async def sleepy_head(self, scope: Scope, receive: Any, send: Any) -> None:
        self.started.set()
        try:
            await asyncio.sleep(30)  # hangs until cancelled
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def waits_for_disconnect(self, scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await start(send)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def fails_before_head(scope: Scope, receive: Any, send: Any) -> None:
    raise RuntimeError("boom")


async def returns_without_head(scope: Scope, receive: Any, send: Any) -> None:
    return


async def fails_mid_body(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    await send({"type": "http.response.body", "body": b"half", "more_body": True})
    raise RuntimeError("connection reset")


async def stops_mid_body(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    await send({"type": "http.response.body", "body": b"half", "more_body": True})


async def slow_body(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await asyncio.sleep(30)


async def collect(parts: AsyncIterator[bytes]) -> list[bytes]:
    return [part async for part in parts]


async def test_round_trip_scope_headers_and_chunks() -> None:
    app = Recorder()
    transport = InProcessTransport(app.echo)
    response = await transport.send(post(body=b"hello"), Timeouts())
    assert response.status == 201
    assert response.headers["x-one"] == "a, b"
    assert await collect(response.chunks()) == [b"hello", b"|end"]
    scope = app.scope
    assert scope["method"] == "POST"
    assert scope["path"] == "/x"
    assert scope["query_string"] == b"a=1"
    assert scope["server"] == ("upstream.test", 8080)
    headers = dict(scope["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == b"5"
    assert headers[b"host"] == b"upstream.test:8080"
    await transport.close()


async def test_read_returns_the_whole_body() -> None:
    transport = InProcessTransport(Recorder().echo)
    response = await transport.send(post(body=b"abc"), Timeouts())
    assert await response.read() == b"abc|end"


async def test_first_byte_timeout_cancels_the_app() -> None:
    app = Recorder()
    transport = InProcessTransport(app.sleepy_head)
    with pytest.raises(UpstreamTimeoutError):
        await transport.send(post(), Timeouts(first_byte=0.05))
    await asyncio.wait_for(app.cancelled.wait(), 1)


async def test_total_timeout_bounds_the_head_too() -> None:
    transport = InProcessTransport(Recorder().sleepy_head)
    with pytest.raises(UpstreamTimeoutError):
        await transport.send(post(), Timeouts(first_byte=10, total=0.05))


async def test_total_timeout_bounds_the_body() -> None:
    transport = InProcessTransport(slow_body)
    response = await transport.send(post(), Timeouts(total=0.1))
    parts = response.chunks()
    assert await anext(parts) == b"first"
    with pytest.raises(UpstreamTimeoutError):
        await anext(parts)
    await transport.close()


@pytest.mark.parametrize("app", [fails_before_head, returns_without_head])
async def test_app_that_never_answers_is_a_retryable_upstream_error(app: Any) -> None:
    transport = InProcessTransport(app)
    with pytest.raises(UpstreamError) as caught:
        await transport.send(post(), Timeouts())
    assert caught.value.retryable
    assert not isinstance(caught.value, UpstreamTimeoutError)


@pytest.mark.parametrize("app", [fails_mid_body, stops_mid_body])
async def test_app_that_stops_mid_body_is_a_retryable_upstream_error(app: Any) -> None:
    transport = InProcessTransport(app)
    response = await transport.send(post(), Timeouts())
    parts = response.chunks()
    assert await anext(parts) == b"half"
    with pytest.raises(UpstreamError) as caught:
        await anext(parts)
    assert caught.value.retryable


async def test_read_of_a_dropped_body_raises() -> None:
    transport = InProcessTransport(stops_mid_body)
    response = await transport.send(post(), Timeouts())
    with pytest.raises(UpstreamError):
        await response.read()


async def test_close_cancels_the_app() -> None:
    app = Recorder()
    transport = InProcessTransport(app.waits_for_disconnect)
    response = await transport.send(post(), Timeouts())
    assert await anext(response.chunks()) == b"part"
    response.close()
    await asyncio.wait_for(app.cancelled.wait(), 1)
    await asyncio.sleep(0)
    assert not transport._tasks


async def test_transport_close_cancels_running_apps() -> None:
    app = Recorder()
    transport = InProcessTransport(app.waits_for_disconnect)
    await transport.send(post(), Timeouts())
    assert transport._tasks
    await transport.close()
    assert not transport._tasks


async def test_caller_cancellation_cancels_the_app() -> None:
    app = Recorder()
    transport = InProcessTransport(app.sleepy_head)
    waiter = asyncio.ensure_future(transport.send(post(), Timeouts()))
    await asyncio.wait_for(app.started.wait(), 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(app.cancelled.wait(), 1)


async def test_total_timeout_stops_a_fast_endless_body() -> None:
    async def endless(scope: Scope, receive: Any, send: Any) -> None:
        await start(send)
        while True:
            await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})
            await asyncio.sleep(0)

    transport = InProcessTransport(endless)
    response = await transport.send(post(), Timeouts(total=0.1))
    with pytest.raises(UpstreamTimeoutError):
        await response.read()
    await transport.close()


async def stalls_after_two_parts(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    for part in (b"one", b"two"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await asyncio.sleep(30)


async def test_idle_timeout_stops_a_stream_that_stalls_mid_way() -> None:
    transport = InProcessTransport(stalls_after_two_parts)
    response = await transport.send(post(), Timeouts(first_byte=5, total=30, idle=0.05))
    parts = response.chunks()
    assert [await anext(parts), await anext(parts)] == [b"one", b"two"]
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamTimeoutError) as caught:
        await anext(parts)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert "idle timeout" in caught.value.message
    await transport.close()
