"""The HTTP transport contract, run over both transports (aiohttp and the lean h1 client) against
real local servers: what is sent, how answers, timeouts and broken connections come back, and
connection reuse."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator

import orjson
import pytest
from tests.unit.transport.conftest import (
    BIG_BODY,
    AppServer,
    MakeTransport,
    StartRawServer,
    answer,
)

from relaygate.core.errors import UpstreamError, UpstreamTimeoutError
from relaygate.providers.base import UpstreamRequest
from relaygate.providers.openai.errors import classify_error
from relaygate.transport.base import NO_STREAM_DATA, Timeouts, Transport

QUICK = Timeouts(connect=2, first_byte=2, total=5, idle=2)


async def collect(chunks: AsyncIterator[bytes], into: list[bytes]) -> None:
    async for chunk in chunks:
        into.append(chunk)


def post(url: str, body: bytes = b"{}", **headers: str) -> UpstreamRequest:
    return UpstreamRequest("POST", url, headers, body)


async def test_the_request_goes_as_given(transport: Transport, app_server: AppServer) -> None:
    request = post(
        f"{app_server.base_url}/echo?api-version=2024-10-21",
        b'{"model": "m"}',
        Authorization="Bearer sk-1",
        **{"x-extra": "yes"},
    )
    response = await transport.send(request, QUICK)
    echoed = orjson.loads(await response.read())
    assert response.status == 200
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/echo?api-version=2024-10-21"
    assert echoed["body"] == '{"model": "m"}'
    sent = {name.lower(): value for name, value in echoed["headers"].items()}
    assert sent["authorization"] == "Bearer sk-1"
    assert sent["x-extra"] == "yes"
    assert sent["host"] == app_server.base_url.removeprefix("http://")
    assert sent["content-length"] == "14"
    assert "user-agent" not in sent


async def test_response_headers_ignore_case(transport: Transport, app_server: AppServer) -> None:
    response = await transport.send(post(f"{app_server.base_url}/echo"), QUICK)
    await response.read()
    assert response.headers["x-upstream-id"] == response.headers.get("X-Upstream-Id") == "abc"
    assert "CONTENT-TYPE" in response.headers


async def test_a_429_carries_its_status_retry_after_and_body(
    transport: Transport, app_server: AppServer
) -> None:
    response = await transport.send(post(f"{app_server.base_url}/429"), QUICK)
    body = await response.read()
    error = classify_error(response.status, response.headers, body)
    assert response.status == 429
    assert error.retry_after == 7
    assert b"slow down" in body


async def test_a_chunked_body_streams_in_order(transport: Transport, app_server: AppServer) -> None:
    response = await transport.send(post(f"{app_server.base_url}/chunked"), QUICK)
    received = b"".join([chunk async for chunk in response.chunks()])
    assert received == b"".join(f"data: {n}\n\n".encode() for n in range(5))


@pytest.mark.parametrize("path", ["/gzip", "/deflate"])
async def test_compressed_bodies_are_decoded(
    transport: Transport, app_server: AppServer, path: str
) -> None:
    whole = await transport.send(post(f"{app_server.base_url}{path}"), QUICK)
    assert await whole.read() == b'{"answer": "squeezed"}' * 100
    streamed = await transport.send(post(f"{app_server.base_url}{path}"), QUICK)
    assert b"".join([c async for c in streamed.chunks()]) == b'{"answer": "squeezed"}' * 100


async def test_a_large_body_arrives_whole_to_a_slow_reader(
    transport: Transport, app_server: AppServer
) -> None:
    response = await transport.send(post(f"{app_server.base_url}/big"), QUICK)
    digest = hashlib.sha256()
    async for chunk in response.chunks():
        digest.update(chunk)
        await asyncio.sleep(0)  # a consumer that yields to the loop between chunks
    assert digest.digest() == hashlib.sha256(BIG_BODY).digest()
    again = await transport.send(post(f"{app_server.base_url}/big"), QUICK)
    assert await again.read() == BIG_BODY


async def test_keep_alive_connections_are_reused(
    transport: Transport, app_server: AppServer
) -> None:
    for _ in range(20):
        response = await transport.send(post(f"{app_server.base_url}/echo"), QUICK)
        await response.read()
    streamed = await transport.send(post(f"{app_server.base_url}/chunked"), QUICK)
    _ = [chunk async for chunk in streamed.chunks()]
    assert len(app_server.peers) == 1


async def test_a_response_closed_unread_does_not_spoil_the_next(
    transport: Transport, app_server: AppServer
) -> None:
    unread = await transport.send(post(f"{app_server.base_url}/big"), QUICK)
    unread.close()
    response = await transport.send(post(f"{app_server.base_url}/echo"), QUICK)
    assert orjson.loads(await response.read())["method"] == "POST"


async def test_connections_stay_under_the_bound(
    make_transport: MakeTransport, app_server: AppServer
) -> None:
    transport = make_transport(max_connections=2)

    async def call() -> int:
        response = await transport.send(post(f"{app_server.base_url}/slow"), QUICK)
        await response.read()
        return response.status

    assert await asyncio.gather(*(call() for _ in range(6))) == [200] * 6
    assert app_server.most_in_flight == 2


async def test_a_stream_that_stalls_mid_way_ends_at_the_idle_timeout(
    transport: Transport, app_server: AppServer
) -> None:
    response = await transport.send(
        post(f"{app_server.base_url}/stall"), Timeouts(first_byte=5, total=30, idle=0.2)
    )
    received: list[bytes] = []
    with pytest.raises(UpstreamTimeoutError, match="idle timeout"):
        await collect(response.chunks(), received)
    assert b"".join(received) == b"data: one\n\ndata: two\n\n"  # maybe in one read
    response.close()


async def test_a_stream_past_its_total_time_ends(
    transport: Transport, app_server: AppServer
) -> None:
    response = await transport.send(
        post(f"{app_server.base_url}/stall"), Timeouts(first_byte=5, total=0.3, idle=5)
    )
    with pytest.raises(UpstreamTimeoutError, match="total timeout"):
        _ = [chunk async for chunk in response.chunks()]
    response.close()


async def test_a_body_that_stalls_ends_at_the_total_timeout(
    transport: Transport, app_server: AppServer
) -> None:
    response = await transport.send(
        post(f"{app_server.base_url}/stall"), Timeouts(first_byte=5, total=0.3, idle=5)
    )
    with pytest.raises(UpstreamTimeoutError, match="did not finish its answer in time"):
        await response.read()


async def test_an_upstream_that_never_answers_times_out_at_the_first_byte(
    transport: Transport, app_server: AppServer
) -> None:
    with pytest.raises(UpstreamTimeoutError, match="first-byte timeout"):
        await transport.send(post(f"{app_server.base_url}/hang"), Timeouts(first_byte=0.2))


async def test_a_stream_whose_head_came_but_no_data_ends_at_the_first_byte_deadline(
    transport: Transport, app_server: AppServer
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await transport.send(
        post(f"{app_server.base_url}/head-only"), Timeouts(first_byte=0.3, total=30, idle=10)
    )
    assert response.status == 200
    with pytest.raises(UpstreamTimeoutError) as caught:
        await anext(response.chunks().__aiter__())
    assert caught.value.message == NO_STREAM_DATA
    assert 0.25 <= loop.time() - started < 2.0  # from the send, not from the head
    response.close()


async def test_once_data_came_the_first_byte_deadline_no_longer_ends_a_stream(
    transport: Transport, app_server: AppServer
) -> None:
    response = await transport.send(
        post(f"{app_server.base_url}/stall"), Timeouts(first_byte=0.2, total=30, idle=0.5)
    )
    received: list[bytes] = []
    with pytest.raises(UpstreamTimeoutError, match="idle timeout"):
        await collect(response.chunks(), received)
    assert b"".join(received) == b"data: one\n\ndata: two\n\n"
    response.close()


async def test_a_whole_body_is_bounded_by_the_total_deadline_not_the_first_byte(
    transport: Transport, app_server: AppServer
) -> None:
    response = await transport.send(
        post(f"{app_server.base_url}/head-only"), Timeouts(first_byte=0.1, total=0.4, idle=10)
    )
    with pytest.raises(UpstreamTimeoutError, match="did not finish its answer in time"):
        await response.read()


async def test_the_callers_own_cancellation_stays_a_cancellation(
    transport: Transport, app_server: AppServer
) -> None:
    call = asyncio.create_task(transport.send(post(f"{app_server.base_url}/hang"), QUICK))
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    response = await transport.send(post(f"{app_server.base_url}/echo"), QUICK)
    assert response.status == 200
    await response.read()


async def test_a_refused_connection_is_a_retryable_upstream_error(transport: Transport) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(UpstreamError) as caught:
            await transport.send(post(f"http://127.0.0.1:{port}/echo"), QUICK)
    assert caught.value.retryable and caught.value.status == 502
    assert caught.value.kind == "unavailable"
    assert not isinstance(caught.value, UpstreamTimeoutError)


async def drops_mid_body(n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    await w.drain()
    return False


async def test_a_connection_dropped_mid_body_is_a_retryable_error(
    transport: Transport, raw_server: StartRawServer
) -> None:
    server = await raw_server(drops_mid_body)
    whole = await transport.send(post(f"{server.base_url}/x"), QUICK)
    with pytest.raises(UpstreamError) as caught:
        await whole.read()
    assert caught.value.retryable and not isinstance(caught.value, UpstreamTimeoutError)
    streamed = await transport.send(post(f"{server.base_url}/x"), QUICK)
    received: list[bytes] = []
    with pytest.raises(UpstreamError):
        await collect(streamed.chunks(), received)
    streamed.close()
    assert b"".join(received) == b"partial"


async def until_close(n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, ")
    await w.drain()
    await asyncio.sleep(0.05)
    w.write(b"until the end")
    await w.drain()
    return False


async def test_a_body_without_length_ends_when_the_connection_closes(
    transport: Transport, raw_server: StartRawServer
) -> None:
    server = await raw_server(until_close)
    for _ in range(2):
        response = await transport.send(post(f"{server.base_url}/x"), QUICK)
        assert await response.read() == b"all of it, until the end"
    assert server.connections == 2


async def closes_after_answering(
    n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    w.write(answer(b'{"n": %d}' % n))
    await w.drain()
    return False  # closes without saying so (no "Connection: close")


async def test_a_connection_the_upstream_closed_is_not_reused(
    transport: Transport, raw_server: StartRawServer
) -> None:
    server = await raw_server(closes_after_answering)
    for n in (1, 2, 3):
        response = await transport.send(post(f"{server.base_url}/x"), QUICK)
        assert orjson.loads(await response.read()) == {"n": n}
        await asyncio.sleep(0.05)  # the close reaches the client before the next request
    assert server.connections == 3


async def test_close_closes_pooled_connections(
    make_transport: MakeTransport, raw_server: StartRawServer
) -> None:
    async def keeps_open(n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(answer(b"{}"))
        await w.drain()
        return True

    server = await raw_server(keeps_open)
    transport = make_transport()
    response = await transport.send(post(f"{server.base_url}/x"), QUICK)
    await response.read()
    assert server.closed == 0
    await transport.close()
    await asyncio.sleep(0.05)
    assert server.connections == server.closed == 1


async def test_waiting_for_a_connection_counts_toward_the_first_byte_timeout(
    make_transport: MakeTransport, app_server: AppServer
) -> None:
    transport = make_transport(max_connections=1)
    holder = asyncio.create_task(transport.send(post(f"{app_server.base_url}/hang"), QUICK))
    await asyncio.sleep(0.1)
    with pytest.raises(UpstreamTimeoutError, match="first-byte timeout"):
        await transport.send(post(f"{app_server.base_url}/echo"), Timeouts(first_byte=0.2))
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder


async def test_a_bounded_pool_gets_its_connections_back_from_every_way_out(
    make_transport: MakeTransport, app_server: AppServer
) -> None:
    transport = make_transport(max_connections=1)
    with pytest.raises(UpstreamTimeoutError):  # timed out holding the only connection
        await transport.send(post(f"{app_server.base_url}/hang"), Timeouts(first_byte=0.1))
    holder = asyncio.create_task(transport.send(post(f"{app_server.base_url}/hang"), QUICK))
    waiter = asyncio.create_task(transport.send(post(f"{app_server.base_url}/echo"), QUICK))
    await asyncio.sleep(0.1)
    waiter.cancel()  # cancelled while waiting for the connection
    holder.cancel()  # cancelled while holding it
    await asyncio.gather(holder, waiter, return_exceptions=True)
    unread = await transport.send(post(f"{app_server.base_url}/big"), QUICK)
    unread.close()  # closed with its body unread
    response = await transport.send(post(f"{app_server.base_url}/echo"), Timeouts(first_byte=1))
    assert response.status == 200
    await response.read()
