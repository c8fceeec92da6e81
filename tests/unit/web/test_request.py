"""The ASGI request's headers: names and values decoded as latin-1 (names remembered)."""

from __future__ import annotations

from relaygate.web.request import Message, Request


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_headers_decode_as_latin_1_and_a_repeated_name_keeps_its_last_value() -> None:
    raw = [(b"x-api-key", b"k1"), (b"x-caf\xe9", b"\xe9t\xe9"), (b"x-api-key", b"k2")]
    for _ in range(2):  # the names worked out, then remembered
        request = Request({"method": "POST", "path": "/", "headers": raw}, _receive)
        assert request.headers == {"x-api-key": "k2", "x-caf\xe9": "\xe9t\xe9"}
