"""Both HTTP transports, and local servers to run them against: a well-behaved aiohttp app and
raw asyncio servers for hostile behaviour (a script of bytes per request)."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvloop
from aiohttp import web

from relaygate.transport.base import Transport
from relaygate.transport.h1 import H1Transport
from relaygate.transport.http import HttpTransport

TRANSPORTS: dict[str, Callable[..., Transport]] = {"aiohttp": HttpTransport, "h1": H1Transport}
BIG_BODY = bytes(range(256)) * (16 * 1024)  # 4 MiB

MakeTransport = Callable[..., Transport]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every transport test runs on both loops: the gateway serves on uvloop, whose transports
    are not ``asyncio.Transport`` subclasses and schedule callbacks differently."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(TRANSPORTS))
async def make_transport(request: pytest.FixtureRequest) -> AsyncIterator[MakeTransport]:
    """Builds the parametrized transport with the given options; closes them all afterwards."""
    made: list[Transport] = []

    def make(**options: Any) -> Transport:
        transport = TRANSPORTS[request.param](**options)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


@pytest.fixture
def transport(make_transport: MakeTransport) -> Transport:
    return make_transport()


@dataclass
class AppServer:
    base_url: str
    peers: set[tuple[str, int]] = field(default_factory=set)
    in_flight: int = 0
    most_in_flight: int = 0


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    answer = {
        "method": request.method,
        "path": request.path_qs,
        "headers": dict(request.headers),
        "body": body.decode(),
    }
    return web.json_response(answer, headers={"X-Upstream-Id": "abc"})


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for n in range(5):
        await response.write(f"data: {n}\n\n".encode())
        await asyncio.sleep(0.01)
    await response.write_eof()
    return response


async def gzipped(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(b'{"answer": "squeezed"}' * 100),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )


async def deflated(request: web.Request) -> web.Response:
    return web.Response(
        body=zlib.compress(b'{"answer": "squeezed"}' * 100),
        headers={"content-encoding": "deflate", "content-type": "application/json"},
    )


async def too_many(request: web.Request) -> web.Response:
    body = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit_error"}})
    return web.Response(
        status=429, body=body, headers={"Retry-After": "7", "content-type": "application/json"}
    )


async def big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "application/octet-stream"})
    response.content_length = len(BIG_BODY)
    await response.prepare(request)
    for start in range(0, len(BIG_BODY), 65536):
        await response.write(BIG_BODY[start : start + 65536])
    return response


async def stalls_after_two_chunks(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for chunk in (b"data: one\n\n", b"data: two\n\n"):
        await response.write(chunk)
    await asyncio.sleep(30)
    return response


async def head_then_nothing(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await asyncio.sleep(30)
    return response


async def hangs(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


@pytest.fixture
async def app_server() -> AsyncIterator[AppServer]:
    server = AppServer("")

    @web.middleware
    async def watch(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        assert request.transport is not None
        server.peers.add(request.transport.get_extra_info("peername"))
        server.in_flight += 1
        server.most_in_flight = max(server.most_in_flight, server.in_flight)
        try:
            if request.path == "/slow":
                await asyncio.sleep(0.1)
                return await echo(request)
            return await handler(request)
        finally:
            server.in_flight -= 1

    app = web.Application(middlewares=[watch])
    for path, handler in {
        "/echo": echo,
        "/slow": echo,
        "/chunked": chunked,
        "/gzip": gzipped,
        "/deflate": deflated,
        "/429": too_many,
        "/big": big,
        "/stall": stalls_after_two_chunks,
        "/hang": hangs,
        "/head-only": head_then_nothing,
    }.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


Script = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]
"""Answers the n-th request (counted over all connections) whose head was read; returns whether
to keep the connection open for another request."""


@dataclass
class RawServer:
    base_url: str
    connections: int = 0
    closed: int = 0
    requests: int = 0


async def read_request(reader: asyncio.StreamReader) -> bool:
    """Reads one request (head and content-length body); ``False`` at end of input."""
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return False
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return True


StartRawServer = Callable[[Script], Awaitable[RawServer]]


@pytest.fixture
async def raw_server() -> AsyncIterator[StartRawServer]:
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(script: Script) -> RawServer:
        state = RawServer("")

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                while True:
                    try:
                        if not await read_request(reader):
                            break
                    except (asyncio.IncompleteReadError, ConnectionError):
                        break
                    state.requests += 1
                    if not await script(state.requests, reader, writer):
                        break
            finally:
                state.closed += 1
                writer.close()
                tasks.discard(task)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        state.base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return state

    yield start
    for task in list(tasks):
        task.cancel()
    for server in servers:
        server.close()
        await server.wait_closed()


def answer(body: bytes, *, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{extra}\r\n"
    ).encode() + body
