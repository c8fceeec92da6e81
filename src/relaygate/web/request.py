"""A minimal ASGI request: headers decoded once, the body read under a size cap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, Protocol

from relaygate.core.errors import PayloadTooLargeError
from relaygate.core.memo import BytesMemo

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


CALLER_WATCH: Final = "relaygate.caller_watch"
"""The scope key under which a server that can (``web.protocol.HttpProtocol``) offers its
``CallerWatch``."""


class CallerWatch(Protocol):
    def watch_caller(self, on_lost: Callable[[], None] | None) -> None:
        """Call ``on_lost`` (at once if already so) when the caller's connection is lost while
        the response is unfinished; ``None`` stops watching."""
        ...


class Request:
    __slots__ = ("_receive", "headers", "method", "path", "query", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        name_of = _header_name
        self.headers: dict[str, str] = {
            name_of(name): value.decode("latin-1") for name, value in scope["headers"]
        }

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

    def caller_watch(self) -> CallerWatch | None:
        """The server's ``CallerWatch``, when it offers one: a disconnect then needs no task
        waiting on ``receive`` (``wait_disconnect``)."""
        watch: CallerWatch | None = self.scope.get(CALLER_WATCH)
        return watch

    async def wait_disconnect(self) -> None:
        """Return once the client has gone away (call only after the body was read)."""
        while (await self._receive())["type"] != "http.disconnect":
            pass


def _decode_name(name: bytes) -> str:
    return name.decode("latin-1")


# A header name's text, remembered: the same few names come with every request.
_header_name = BytesMemo(_decode_name, 512).__getitem__


def _too_large(max_bytes: int) -> str:
    return f"Request body is larger than the limit of {max_bytes} bytes"
