"""What only the lean h1 client promises: the keep-alive race retried (and nothing else), the
stream's buffer bound, idle connections expiring, refused header values, TLS (aiohttp builds its
default TLS context at import, so a test certificate cannot be trusted there)."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from tests.unit.transport.conftest import AppServer, StartRawServer, answer, echo

from relaygate.core.errors import UpstreamError, UpstreamTimeoutError
from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import Timeouts
from relaygate.transport.h1 import H1Response, H1Transport
from relaygate.transport.h1_connection import HIGH_WATER, MAX_HEAD_BYTES, H1Connection
from relaygate.transport.h1_pool import ConnectionPool, HostKey

QUICK = Timeouts(connect=2, first_byte=2, total=5, idle=2)


@pytest.fixture
async def h1() -> AsyncIterator[H1Transport]:
    transport = H1Transport()
    yield transport
    await transport.close()


def post(url: str) -> UpstreamRequest:
    return UpstreamRequest("POST", url, {}, b"{}")


async def test_a_reused_connection_closed_before_answering_is_retried_once_on_a_new_one(
    h1: H1Transport, raw_server: StartRawServer
) -> None:
    async def second_request_finds_it_closing(
        n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        if n == 2:
            return False  # read the request, then close: the keep-alive race
        w.write(answer(b'{"n": %d}' % n))
        await w.drain()
        return True

    server = await raw_server(second_request_finds_it_closing)
    first = await h1.send(post(f"{server.base_url}/x"), QUICK)
    assert await first.read() == b'{"n": 1}'
    second = await h1.send(post(f"{server.base_url}/x"), QUICK)
    assert await second.read() == b'{"n": 3}'
    assert server.connections == 2 and server.requests == 3


async def test_no_retry_once_any_byte_of_the_answer_arrived(
    h1: H1Transport, raw_server: StartRawServer
) -> None:
    async def second_answer_breaks_off(
        n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        if n == 2:
            w.write(b"HTTP/1.1 200")
            await w.drain()
            return False
        w.write(answer(b"{}"))
        await w.drain()
        return True

    server = await raw_server(second_answer_breaks_off)
    await (await h1.send(post(f"{server.base_url}/x"), QUICK)).read()
    with pytest.raises(UpstreamError) as caught:
        await h1.send(post(f"{server.base_url}/x"), QUICK)
    assert caught.value.retryable
    assert server.requests == 2


async def test_a_new_connection_closed_before_answering_is_not_retried(
    h1: H1Transport, raw_server: StartRawServer
) -> None:
    async def never_answers(n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        return False

    server = await raw_server(never_answers)
    with pytest.raises(UpstreamError, match="connection failed"):
        await h1.send(post(f"{server.base_url}/x"), QUICK)
    assert server.requests == 1


async def test_a_slow_stream_reader_holds_a_bounded_buffer(
    h1: H1Transport, app_server: AppServer
) -> None:
    response = await h1.send(post(f"{app_server.base_url}/big"), QUICK)
    assert isinstance(response, H1Response)
    most = 0
    async for _ in response.chunks():
        await asyncio.sleep(0.001)  # let the socket fill whatever it may
        most = max(most, response._conn.buffered)
    # One socket read (at most 256 KiB) may land past the mark before reading pauses.
    assert 0 < most <= HIGH_WATER + 256 * 1024


async def test_stream_parts_that_arrived_together_come_out_as_one_chunk(
    h1: H1Transport, raw_server: StartRawServer
) -> None:
    last_part = asyncio.Event()

    async def three_parts_at_once_then_one_more(
        n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        w.write(head + b"2\r\na1\r\n2\r\na2\r\n2\r\na3\r\n")
        await w.drain()
        await last_part.wait()
        w.write(b"2\r\nb1\r\n0\r\n\r\n")
        await w.drain()
        return True

    server = await raw_server(three_parts_at_once_then_one_more)
    response = await h1.send(post(f"{server.base_url}/x"), QUICK)
    await asyncio.sleep(0.05)  # all three are in (one write, one read)
    chunks = response.chunks()
    assert await anext(chunks) == b"a1a2a3"
    last_part.set()  # nothing waited for this one: it came later, on its own
    assert [chunk async for chunk in chunks] == [b"b1"]


async def collect(chunks: AsyncIterator[bytes], into: list[bytes]) -> None:
    async for chunk in chunks:
        into.append(chunk)


class TimerCount:
    """The running loop, counting the timers armed through it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.armed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)

    def call_at(self, when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        self.armed += 1
        return self.loop.call_at(when, callback, *args)


async def test_a_stream_whose_parts_keep_coming_outlives_its_idle_bound_with_few_timers(
    h1: H1Transport, raw_server: StartRawServer
) -> None:
    async def a_part_every_50_ms(
        n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(12):
            await asyncio.sleep(0.05)
            w.write(b"1\r\n%d\r\n" % (i % 10))
            await w.drain()
        w.write(b"0\r\n\r\n")
        return True

    server = await raw_server(a_part_every_50_ms)
    idle = Timeouts(connect=2, first_byte=2, total=5, idle=0.2)
    response = await h1.send(post(f"{server.base_url}/x"), idle)
    assert isinstance(response, H1Response)
    loop = asyncio.get_running_loop()
    timers = TimerCount(loop)
    response._conn.loop = timers  # type: ignore[assignment]
    parts, arrivals = [], [loop.time()]
    async for chunk in response.chunks():
        parts.append(chunk)
        arrivals.append(loop.time())
    arrivals.append(loop.time())  # the stream's end
    # 0.6 s in all when the machine is quiet, three times the idle bound, but never 0.2 s
    # without a part.
    assert b"".join(parts) == b"012345678901"
    # One timer per idle bound passed (re-armed when it came due), not one per part. A timer is
    # re-armed for the bound of the wait in progress when it rings, so the next one rings at
    # least (idle - the longest wait) later; how many bounds pass depends on how long the
    # stream took (a loaded machine sends the parts late), so the bound comes from that. One
    # more: the pool's sweeper, armed when the connection goes back to it.
    elapsed = arrivals[-1] - arrivals[0]
    longest = max(b - a for a, b in itertools.pairwise(arrivals))
    assert longest < 0.2, arrivals  # else the idle bound would have ended it
    assert 1 <= timers.armed <= 3 + max(0.0, elapsed - 0.2) / (0.2 - longest)


async def test_an_exchange_arms_one_timer_for_its_head_first_data_and_parts(
    h1: H1Transport, raw_server: StartRawServer
) -> None:
    async def a_stream_of_five_parts(
        n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        await asyncio.sleep(0.02)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(5):
            await asyncio.sleep(0.02)
            w.write(b"1\r\n%d\r\n" % i)
            await w.drain()
        w.write(b"0\r\n\r\n")
        return True

    server = await raw_server(a_stream_of_five_parts)
    await (await h1.send(post(f"{server.base_url}/warm"), QUICK)).read()  # a pooled connection
    timers = TimerCount(asyncio.get_running_loop())
    (conn,) = [conn for idle in h1._pool._idle.values() for conn in idle]
    conn.loop = timers  # type: ignore[assignment]
    response = await h1.send(post(f"{server.base_url}/x"), QUICK)
    received = b"".join([chunk async for chunk in response.chunks()])
    assert received == b"01234"
    # The head's wait, the first-byte bound of the first data and the idle bound: one timer.
    assert timers.armed == 1


async def test_a_stream_that_stalls_after_parts_ends_at_its_idle_bound(
    h1: H1Transport, raw_server: StartRawServer
) -> None:
    async def two_parts_then_nothing(
        n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await asyncio.sleep(0.1)
        w.write(b"1\r\nb\r\n")
        await asyncio.sleep(10)
        return False

    server = await raw_server(two_parts_then_nothing)
    idle = Timeouts(connect=2, first_byte=2, total=5, idle=0.3)
    response = await h1.send(post(f"{server.base_url}/x"), idle)
    received: list[bytes] = []
    with pytest.raises(UpstreamTimeoutError, match="idle"):
        await collect(response.chunks(), received)
    assert received == [b"a", b"b"]


async def test_idle_connections_expire(app_server: AppServer) -> None:
    transport = H1Transport(keepalive_seconds=0.1)
    try:
        await (await transport.send(post(f"{app_server.base_url}/echo"), QUICK)).read()
        await asyncio.sleep(0.3)
        await (await transport.send(post(f"{app_server.base_url}/echo"), QUICK)).read()
    finally:
        await transport.close()
    assert len(app_server.peers) == 2


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", {"x-a": "1\r\nx-injected: yes"}),
        ("POST", {"x-a": "1\nx-injected: yes"}),
        ("POST", {"x-a\r\nx-injected": "yes"}),
        ("POST", {"x-b": "ok", "x-a\nx-injected": "yes"}),
        ("POST\r\nX-Injected: yes\r\nPOST", {}),
    ],
)
async def test_a_line_break_in_a_header_or_the_request_line_is_refused(
    h1: H1Transport, app_server: AppServer, method: str, headers: dict[str, str]
) -> None:
    request = UpstreamRequest(method, f"{app_server.base_url}/echo", headers, b"")
    for _ in range(2):  # the second time, with what the first one remembered
        with pytest.raises(ValueError, match="line break"):
            await h1.send(request, QUICK)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (and its key), made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_checks_the_certificate_and_the_host_name(
    app_server: AppServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when the client's context is made
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
    port = runner.addresses[0][1]
    transport = H1Transport()
    try:
        response = await transport.send(post(f"https://localhost:{port}/echo"), QUICK)
        assert orjson.loads(await response.read())["path"] == "/echo"
        with pytest.raises(UpstreamError, match="connection failed"):  # not the name it holds
            await transport.send(post(f"https://127.0.0.1:{port}/echo"), QUICK)
    finally:
        await transport.close()
        await runner.cleanup()


@pytest.mark.parametrize(
    ("connect", "first_byte", "message"),
    [
        (0.1, 5.0, "could not connect to the upstream in time"),
        (5.0, 0.1, "first-byte timeout"),
    ],
)
async def test_a_slow_connect_ends_at_the_earlier_of_its_two_timeouts(
    h1: H1Transport,
    monkeypatch: pytest.MonkeyPatch,
    connect: float,
    first_byte: float,
    message: str,
) -> None:
    async def never_connects(self: ConnectionPool, key: HostKey) -> H1Connection:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    monkeypatch.setattr(ConnectionPool, "connect", never_connects)
    with pytest.raises(UpstreamTimeoutError, match=message):
        await h1.send(
            post("http://upstream.test/x"), Timeouts(connect=connect, first_byte=first_byte)
        )


async def test_an_answer_with_too_many_header_bytes_is_cut_off(
    h1: H1Transport, raw_server: StartRawServer
) -> None:
    async def endless_headers(
        n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(MAX_HEAD_BYTES // 1000 + 1):
            w.write(b"x-filler-%d: %s\r\n" % (i, b"f" * 1000))
        w.write(b"Content-Length: 0\r\n\r\n")
        await w.drain()
        return True

    server = await raw_server(endless_headers)
    with pytest.raises(UpstreamError, match="connection failed"):
        await h1.send(post(f"{server.base_url}/x"), QUICK)
