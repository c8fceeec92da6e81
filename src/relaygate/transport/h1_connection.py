"""One HTTP/1.1 client connection: an ``asyncio.Protocol`` that parses responses with httptools.

The protocol only collects: the head, body parts in a queue, completion, failure. Whoever waits
for one of those (``next_event``) keeps its own timer (the transport: one for the whole
exchange) that calls ``expire``, and the callbacks wake it; an expired wait returns ``False``
instead of raising, so a caller's own cancellation is never mistaken for a timeout.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final, cast

import httptools

from relaygate.core.memo import BytesMemo

HIGH_WATER: Final = 256 * 1024
"""Unread body bytes at which the socket stops being read (a consumer that lags)."""
LOW_WATER: Final = 64 * 1024
"""...and at which it is read again."""
MAX_HEAD_BYTES: Final = 64 * 1024
"""Header names and values of one answer beyond which the upstream is cut off (aiohttp refused
lines over 8 KiB): a broken upstream must not fill the gateway's memory with headers."""


class HeadTooLarge(Exception):
    """The answer's headers passed ``MAX_HEAD_BYTES``."""


class Headers(dict[str, str]):
    """Response headers with lower-case names; lookups ignore case. A repeated header's values
    are joined with ", "."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return dict.get(self, name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


def _lower_name(name: bytes) -> str:
    return name.decode("latin-1").lower()


# A header name as Headers keys it, remembered: an upstream sends the same few on every answer.
_header_key = BytesMemo(_lower_name, 512).__getitem__


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class H1Connection(asyncio.Protocol):
    """A pooled connection; serves one request at a time (no pipelining)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[H1Connection], None]):
        self.loop = loop
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[bool] | None = None
        self._paused = False
        self.closed = False
        self.idle_since = 0.0
        self.host_key: tuple[str, str, int] = ("", "", 0)
        self.counted = False  # holds one of the pool's slots (while in use)
        self._reset()

    def _reset(self) -> None:
        self.busy = False
        self.head_only = False
        self.got_bytes = False
        self.head_done = False
        self.complete = False
        self.reusable = False
        self.until_close = False
        self.error: BaseException | None = None
        self.status = 0
        self.headers = Headers()
        self.head_bytes = 0
        self.parts: deque[bytes] = deque()
        self.buffered = 0
        self.wake_on_body = True
        self.unbounded = False

    # -- used by the transport -------------------------------------------------------------

    def start(self, data: bytes, head_only: bool) -> None:
        """Send one request (head and body in one write) and expect its response."""
        self._reset()
        self.busy = True
        self.head_only = head_only
        assert self._transport is not None
        self._transport.write(data)

    def usable(self) -> bool:
        return not self.closed and self._transport is not None and not self._transport.is_closing()

    def next_event(self) -> asyncio.Future[bool]:
        """Done at the next event (head, body part if ``wake_on_body``, end, failure) with
        ``True``, or with ``False`` when the caller's own timer ended the wait first
        (``expire``). A future to await, not a coroutine: a stream awaits one per part, and
        each coroutine frame between it and the pump is resumed on every part."""
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._waiter = waiter
        return waiter

    def expire(self) -> None:
        """End the pending ``wait`` (if any) as timed out."""
        if self._waiter is not None:
            _expire(self._waiter)

    def take(self) -> bytes:
        """The oldest unread body part (there must be one)."""
        part = self.parts.popleft()
        self.buffered -= len(part)
        if self._paused and self.buffered <= LOW_WATER:
            self._resume()
        return part

    def take_all(self) -> list[bytes]:
        parts = list(self.parts)
        self.parts.clear()
        self.buffered = 0
        if self._paused:
            self._resume()
        return parts

    def read_everything(self) -> None:
        """The consumer wants the whole body: no back-pressure, wake only at the end."""
        self.unbounded = True
        self.wake_on_body = False
        if self._paused:
            self._resume()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:
            # Bytes nobody asked for (e.g. a 408 on an idle connection): never reuse it.
            self.close()
            return
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def eof_received(self) -> bool:
        self.closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy and not self.complete:
            if self.until_close and exc is None:
                self._finish()
            else:
                self._fail(exc or ConnectionResetError("connection closed by the upstream"))
        self._on_lost(self)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value)
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge  # httptools raises it from feed_data as a parser error
        key = _header_key(name)
        text = value.decode("latin-1")
        headers = self.headers
        previous = dict.get(headers, key)
        dict.__setitem__(headers, key, text if previous is None else f"{previous}, {text}")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers = Headers()  # an interim answer (100 Continue): the real one follows
            return
        self.status = status
        self.head_done = True
        if self.head_only:
            self._finish()
            return
        headers = self.headers
        self.until_close = (
            "content-length" not in headers
            and "transfer-encoding" not in headers
            and status not in (204, 304)
        )
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._paused and not self.unbounded:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        if self.wake_on_body:
            self._wake()

    def on_message_complete(self) -> None:
        if self.head_done and not self.complete:
            self.reusable = self._parser.should_keep_alive() and not self.until_close
            self._finish()

    # -- internals -------------------------------------------------------------------------

    def _finish(self) -> None:
        self.complete = True
        if self.head_only:
            self.reusable = False
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def _resume(self) -> None:
        self._paused = False
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()
