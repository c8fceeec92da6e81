"""Sending ASGI responses: whole bodies and server-sent event streams."""

from __future__ import annotations

from relaygate.web.request import Send

Headers = list[tuple[bytes, bytes]]

JSON_CONTENT = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

_NO_LENGTH = frozenset((204, 304))


async def send_body(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """A whole body, with its length unless 204/304: the server then writes the head and the body
    in one socket write (``relaygate.web.protocol``)."""
    if status not in _NO_LENGTH:
        headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    await send_body(send, status, body, [JSON_CONTENT, *(headers or ())])


async def start_stream(send: Send, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})


async def send_chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def end_stream(send: Send) -> None:
    await send({"type": "http.response.body", "body": b""})
