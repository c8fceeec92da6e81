"""The server protocol writes a response's head with its (first) body; a stream's head also alone
when its first event is not sent in the same pass of the loop.

The protocol runs on a transport that records every write, so "one write" is what is counted;
the last tests run it behind a real socket on uvloop (keep-alive, pipelining, a stream).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from relaygate.web.protocol import HttpProtocol
from relaygate.web.request import Receive, Request, Scope, Send
from relaygate.web.responses import end_stream, send_body, send_chunk, start_stream

App = Callable[[Scope, Receive, Send], Awaitable[None]]
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connect(
    app: App, protocol: type[HttpToolsProtocol] = HttpProtocol
) -> tuple[HttpToolsProtocol, RecordingTransport]:
    config = uvicorn.Config(app, http=protocol, lifespan="off", log_level="critical")
    server = protocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    server.connection_made(transport)
    return server, transport


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def whole(scope: Scope, receive: Receive, send: Send) -> None:
    await send_body(send, 200, b'{"ok":true}', [(b"content-type", b"application/json")])


async def test_a_sized_response_leaves_in_one_write() -> None:
    server, transport = connect(whole)
    server.data_received(GET)
    await settle()
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 11" in head
    assert b"transfer-encoding" not in head
    assert body == b'{"ok":true}'
    assert not transport.closed


async def test_uvicorns_own_protocol_writes_the_same_response_twice() -> None:
    """What the protocol changes: the stock one writes the head, then the body."""
    server, transport = connect(whole, HttpToolsProtocol)
    server.data_received(GET)
    await settle()
    assert len(transport.writes) == 2
    assert b"".join(transport.writes) == (await _one_write_of(whole))


async def _one_write_of(app: App) -> bytes:
    server, transport = connect(app)
    server.data_received(GET)
    await settle()
    assert len(transport.writes) == 1
    return transport.writes[0]


@pytest.mark.parametrize("paused", [False, True], ids=["writing", "writes-paused"])
async def test_a_streams_head_is_written_before_its_first_event_exists(paused: bool) -> None:
    first_event = asyncio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await start_stream(send, [])
        await first_event.wait()
        await send_chunk(send, b"data: 1\n\n")
        await end_stream(send)

    server, transport = connect(stream)
    if paused:
        server.pause_writing()
    server.data_received(GET)
    await settle()
    if paused:
        assert transport.writes == []
        server.resume_writing()
        await settle()
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    first_event.set()
    await settle()
    assert transport.writes[1:] == [b"9\r\ndata: 1\n\n\r\n", b"0\r\n\r\n"]


async def test_a_streams_head_leaves_with_the_first_event_sent_right_after_it() -> None:
    """What the gateway does (the head only once the first event is there): one write, one
    system call and one segment less on the way to the first token."""

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await start_stream(send, [])
        await send_chunk(send, b"data: 1\n\n")
        await asyncio.sleep(0)
        await send_chunk(send, b"data: 2\n\n")
        await end_stream(send)

    server, transport = connect(stream)
    server.data_received(GET)
    await settle()
    head, _, first = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"transfer-encoding: chunked")
    assert first == b"9\r\ndata: 1\n\n\r\n"
    assert transport.writes[1:] == [b"9\r\ndata: 2\n\n\r\n", b"0\r\n\r\n"]


async def test_a_stream_failing_after_its_head_leaves_a_closed_connection() -> None:
    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        await start_stream(send, [])
        raise RuntimeError("boom")

    server, transport = connect(fails)
    server.data_received(GET)
    await settle()
    assert transport.writes == []
    assert transport.closed


async def test_pipelined_requests_get_their_answers_in_order_on_one_connection() -> None:
    async def echo_path(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.01 if scope["path"] == "/a" else 0)
        await send_body(send, 200, scope["path"].encode(), [])

    server, transport = connect(echo_path)
    server.data_received(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
    await asyncio.sleep(0.05)
    await settle()
    assert [w.rpartition(b"\r\n\r\n")[2] for w in transport.writes] == [b"/a", b"/b"]
    assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") for w in transport.writes)
    assert not transport.closed


async def test_connection_close_writes_the_whole_answer_then_closes() -> None:
    server, transport = connect(whole)
    server.data_received(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    await settle()
    assert len(transport.writes) == 1
    assert b"connection: close" in transport.writes[0]
    assert transport.writes[0].endswith(b'{"ok":true}')
    assert transport.closed


async def test_a_head_requests_answer_is_its_head_alone() -> None:
    server, transport = connect(whole)
    server.data_received(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    await settle()
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b"content-length: 11\r\n\r\n")


async def test_a_bodiless_304_has_its_head_written_at_once() -> None:
    async def not_modified(scope: Scope, receive: Receive, send: Send) -> None:
        await send_body(send, 304, b"", [(b"etag", b'"x"')])

    server, transport = connect(not_modified)
    server.data_received(GET)
    await settle()
    assert transport.writes[0].startswith(b"HTTP/1.1 304 Not Modified\r\n")
    assert b"content-length" not in transport.writes[0]
    assert b"".join(transport.writes).endswith(b"\r\n\r\n")
    assert not transport.closed


async def _fails_after_the_head(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    raise RuntimeError("boom")


async def _body_longer_than_its_length(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"abc"})


@pytest.mark.parametrize("app", [_fails_after_the_head, _body_longer_than_its_length])
async def test_an_unfinished_answer_leaves_a_closed_connection_not_a_cut_answer(app: App) -> None:
    server, transport = connect(app)
    server.data_received(GET)
    await settle()
    assert transport.writes == []
    assert transport.closed


async def test_a_sized_body_in_parts_sends_the_head_with_the_first() -> None:
    async def parts(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"6")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})

    server, transport = connect(parts)
    server.data_received(GET)
    await settle()
    assert len(transport.writes) == 2
    assert transport.writes[0].endswith(b"\r\n\r\nabc")
    assert transport.writes[1] == b"def"


async def test_while_writes_are_paused_nothing_is_written_until_the_drain() -> None:
    server, transport = connect(whole)
    server.pause_writing()
    server.data_received(GET)
    await settle()
    assert transport.writes == []
    server.resume_writing()
    await settle()
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b'content-length: 11\r\n\r\n{"ok":true}')


async def test_a_keep_alive_connection_after_a_failed_answer_is_closed_not_reused() -> None:
    calls: list[str] = []

    async def fails_first(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["path"])
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if len(calls) == 1:
            raise RuntimeError("boom")
        await send({"type": "http.response.body", "body": b"ok"})

    server, transport = connect(fails_first)
    server.data_received(GET.replace(b"/", b"/a", 1) + GET.replace(b"/", b"/b", 1))
    await settle()
    assert transport.closed
    assert transport.writes == []
    assert calls == ["/a"]


async def test_a_client_gone_before_the_body_gets_nothing_written() -> None:
    body_may_go = asyncio.Event()

    async def slow_body(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await body_may_go.wait()
        await send({"type": "http.response.body", "body": b"ok"})

    server, transport = connect(slow_body)
    server.data_received(GET)
    await settle()
    server.connection_lost(None)
    body_may_go.set()
    await settle()
    assert transport.writes == []


def _serve_and_call(app: App, exchange: Callable[[int], list[bytes]]) -> list[bytes]:
    """Run ``app`` behind uvicorn with ``HttpProtocol`` on uvloop; ``exchange(port)`` talks."""

    async def main() -> list[bytes]:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, http=HttpProtocol, lifespan="off", log_level="critical"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(exchange, port)
        finally:
            server.should_exit = True
            await task

    return uvloop.run(main())


def _read_until(sock: socket.socket, ends: bytes, count: int = 1) -> bytes:
    data = b""
    while data.count(ends) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_behind_a_real_socket_keep_alive_and_pipelining_hold() -> None:
    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        await send_body(send, 200, scope["path"].encode(), [])

    def exchange(port: int) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
            first = _read_until(sock, b"/one")
            sock.sendall(b"GET /two HTTP/1.1\r\nHost: t\r\n\r\n" + GET.replace(b"/", b"/three", 1))
            rest = _read_until(sock, b"/three")
            return [first, rest]

    first, rest = _serve_and_call(echo, exchange)
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"\r\n\r\n/one")
    assert rest.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert rest.index(b"\r\n\r\n/two") < rest.index(b"\r\n\r\n/three")
    assert rest.endswith(b"/three")


def test_behind_a_real_socket_a_streams_head_arrives_before_its_first_event() -> None:
    head_read = threading.Event()
    waited: list[bool] = []

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await start_stream(send, [])
        # The first event is produced only once the client has read the head.
        waited.append(await asyncio.to_thread(head_read.wait, 10))
        await send_chunk(send, b"data: 1\n\n")
        await end_stream(send)

    def exchange(port: int) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(GET)
            head = _read_until(sock, b"\r\n\r\n")
            head_read.set()
            rest = _read_until(sock, b"0\r\n\r\n")
            return [head, rest]

    head, rest = _serve_and_call(stream, exchange)
    assert waited == [True]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert rest.endswith(b"data: 1\n\n\r\n0\r\n\r\n")


async def test_a_100_continue_goes_out_at_once_and_the_answer_after_it_in_one_write() -> None:
    async def reads_then_answers(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        await send_body(send, 200, message["body"], [])

    server, transport = connect(reads_then_answers)
    server.data_received(
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    await settle()
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    server.data_received(b"hi")
    await settle()
    assert len(transport.writes) == 2
    assert transport.writes[1].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[1].endswith(b"content-length: 2\r\n\r\nhi")


async def test_the_running_request_hears_of_its_callers_loss_without_a_task() -> None:
    lost: list[str] = []
    watching = asyncio.Event()
    done = asyncio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await start_stream(send, [])
        await send_chunk(send, b"data: one\n\n")
        watch = Request(scope, receive).caller_watch()
        assert watch is not None
        watch.watch_caller(lambda: lost.append("while streaming"))
        watching.set()
        await done.wait()
        watch.watch_caller(None)
        watch.watch_caller(lambda: lost.append("already gone"))  # lost before: called at once

    server, _ = connect(stream)
    server.data_received(GET)
    await watching.wait()
    server.connection_lost(None)
    assert lost == ["while streaming"]
    done.set()
    await settle()
    assert lost == ["while streaming", "already gone"]


async def test_a_finished_response_is_not_a_lost_caller() -> None:
    lost: list[str] = []

    async def whole_then_watch(scope: Scope, receive: Receive, send: Send) -> None:
        Request(scope, receive).caller_watch().watch_caller(lambda: lost.append("x"))  # type: ignore[union-attr]
        await send_body(send, 200, b"ok", [])

    server, _ = connect(whole_then_watch)
    server.data_received(GET)
    await settle()
    server.connection_lost(None)
    assert lost == []


async def test_a_forbidden_header_name_fails_the_answer_every_time() -> None:
    refused: list[str] = []

    async def bad_name(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send_body(send, 200, b"{}", [(b"bad name", b"x")])
        except RuntimeError as exc:
            refused.append(str(exc))

    for _ in range(2):
        server, transport = connect(bad_name)
        server.data_received(GET)
        await settle()
        assert transport.writes == [] and transport.closed
    assert refused == ["Invalid HTTP header name."] * 2
