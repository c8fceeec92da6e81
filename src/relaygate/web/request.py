"""A minimal ASGI request: headers decoded once, the body read under a size cap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from relaygate.core.errors import PayloadTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Request:
    __slots__ = ("_receive", "headers", "method", "path", "query", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        self.headers: dict[str, str] = _decoded(scope["headers"])

    async def body(self, max_bytes: int) -> bytes:
        """The whole body; raises ``PayloadTooLargeError`` past ``max_bytes`` without reading on."""
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise PayloadTooLargeError(_too_large(max_bytes))
        parts: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLargeError(_too_large(max_bytes))
                parts.append(chunk)
            if not message.get("more_body", False):
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def wait_disconnect(self) -> None:
        """Return once the client has gone away (call only after the body was read)."""
        while (await self._receive())["type"] != "http.disconnect":
            pass


# Header names decoded once each: a few dozen names come again and again (any caller's are
# remembered only while fewer than MAX_KNOWN_NAMES are), and decoding them was a third of the
# headers' cost.
MAX_KNOWN_NAMES = 256
_KNOWN_NAMES: dict[bytes, str] = {}


def _decoded(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI's header pairs as text (latin-1: every byte is a character), a later name winning."""
    known = _KNOWN_NAMES
    headers: dict[str, str] = {}
    for name, value in raw:
        text = known.get(name)
        if text is None:
            text = name.decode("latin-1")
            if len(known) < MAX_KNOWN_NAMES:
                known[name] = text
        headers[text] = value.decode("latin-1")
    return headers


def _too_large(max_bytes: int) -> str:
    return f"Request body is larger than the limit of {max_bytes} bytes"
