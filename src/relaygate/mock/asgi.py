"""The few raw-ASGI pieces the mock needs: types, body reading, replies and the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Final, Protocol

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
RawHeaders = Sequence[tuple[bytes, bytes]]

JSON_TYPE: Final = (b"content-type", b"application/json")
SSE_HEADERS: Final = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


class ASGIApp(Protocol):
    """An ASGI 3 application."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or ``None`` when the client went away first."""
    first = await receive()
    if first["type"] != "http.request":
        return None
    body: bytes = first.get("body", b"")
    if not first.get("more_body", False):
        return body
    parts = [body]
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def request_headers(scope: Scope) -> dict[str, str]:
    """Header names lower-cased (ASGI already does) and decoded as latin-1."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def send_whole(
    send: Send, status: int, body: bytes, headers: RawHeaders = (JSON_TYPE,)
) -> None:
    """A complete response with ``Content-Length``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def wait_for_disconnect(receive: Receive, limit: float) -> None:
    """Block until the client disconnects (or ``limit`` seconds pass): a hang that frees itself."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            while (await receive())["type"] != "http.disconnect":
                pass


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge start-up and shut-down; the mock holds nothing that needs opening or closing."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
