"""A lean HTTP/1.1 client transport: asyncio.Protocol + httptools, pooled keep-alive connections.

It does what the gateway needs and no more: one write per request (head and a content-length
body), responses by content-length, chunked or until close, gzip/deflate decoding, back-pressure
on streams, and the same timeouts and errors as ``HttpTransport``, each phase with at most one
timer. A request that fails on a reused connection before any byte of an answer arrived (the
peer closed it as it was taken: the keep-alive race) is sent once more on a new connection.

``accept-encoding: gzip, deflate`` is sent unless the request names its own, as aiohttp did:
real upstreams compress JSON answers when asked and the bytes over a WAN cost more than the
inflate; an upstream that does not compress (the mock) costs nothing extra.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Final
from urllib.parse import urlsplit

from relaygate.core.errors import UpstreamTimeoutError
from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import Timeouts, connection_failed, wait_expired
from relaygate.transport.h1_connection import H1Connection
from relaygate.transport.h1_pool import ConnectionPool, HostKey

MAX_CACHED_TARGETS: Final = 256
_NEVER: Final = float("inf")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class _Target:
    """What a URL contributes to a request: where to connect and the request line's head."""

    __slots__ = ("head", "head_only", "key")

    def __init__(self, method: str, url: str) -> None:
        self.head_only = method.upper() == "HEAD"
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or _DEFAULT_PORTS[scheme]
        self.key: HostKey = (scheme, parts.hostname, port)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        host = parts.netloc.rpartition("@")[2]
        if parts.port == _DEFAULT_PORTS[scheme]:
            host = host.rpartition(":")[0]
        self.head = f"{method.upper()} {path} HTTP/1.1\r\nHost: {host}\r\n"
        if self.head.count("\n") != 2 or self.head.count("\r") != 2:
            raise ValueError("the method or URL holds a line break")


def _encode(req: UpstreamRequest, target: _Target) -> bytes:
    lines = [target.head]
    compression_named = False
    for name, value in req.headers.items():
        kind = _NAME_KINDS.get(name)
        if kind is None:
            kind = _name_kind(name)
        if kind == _SKIP:
            continue
        if "\n" in value or "\r" in value:
            raise ValueError("a header name or value holds a line break")
        compression_named = compression_named or kind == _COMPRESSION
        lines.append(f"{name}: {value}\r\n")
    if not compression_named:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    lines.append(f"Content-Length: {len(req.body)}\r\n\r\n")
    return "".join(lines).encode("utf-8") + req.body


# What a request header's name means to ``_encode``: one the client writes itself (skipped),
# ``accept-encoding`` (the caller chose), or any other; worked out once per name (a
# provider sends the same few on every request), and a name with a line break refused.
_SKIP: Final = 0
_COMPRESSION: Final = 1
_OTHER: Final = 2
_OWN_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_NAME_KINDS: dict[str, int] = {}
_NAME_KINDS_KEPT: Final = 512


def _name_kind(name: str) -> int:
    if "\n" in name or "\r" in name:
        raise ValueError("a header name or value holds a line break")
    lowered = name.lower()
    kind = (
        _SKIP
        if lowered in _OWN_HEADERS
        else _COMPRESSION
        if lowered == "accept-encoding"
        else _OTHER
    )
    if len(_NAME_KINDS) < _NAME_KINDS_KEPT:
        _NAME_KINDS[name] = kind
    return kind


class _Decoder:
    """Inflates a gzip or deflate body part by part."""

    __slots__ = ("_raw_fallback", "_zlib")

    def __init__(self, encoding: str) -> None:
        gzip = encoding == "gzip"
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        self._raw_fallback = not gzip  # some servers send raw deflate without the zlib header

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._zlib.decompress(data)
        except zlib.error:
            if not self._raw_fallback:
                raise
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data)
        self._raw_fallback = False
        return out

    def flush(self) -> bytes:
        return self._zlib.flush()


def _decoder(encoding: str) -> _Decoder | None:
    encoding = encoding.strip().lower()
    return _Decoder(encoding) if encoding in ("gzip", "deflate") else None


class _Alarm:
    """The one timer of an exchange's waits (the head, then the body or each part of a stream).

    Each wait names its bound (``wait(bound)``); the timer is armed once, for the first wait's
    bound, and when it comes due it is armed again only if a later wait has moved the bound on.
    A timer per wait cost a timer handle each, and a cancelled libuv timer's close costs the
    event loop one more pass. Bounds only move later in practice (the head's first-byte
    deadline comes first); a wait whose bound is earlier than the armed one re-arms it."""

    __slots__ = ("_armed_for", "_conn", "_handle", "bound")

    def __init__(self, conn: H1Connection) -> None:
        self._conn = conn
        self.bound = 0.0
        self._armed_for = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def wait(self, bound: float) -> asyncio.Future[bool]:
        """``H1Connection.next_event`` to await: ``False`` when ``bound`` came first."""
        self.bound = bound
        handle = self._handle
        if handle is None:
            self._arm(bound)
        elif bound < self._armed_for:
            handle.cancel()
            self._arm(bound)
        return self._conn.next_event()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, due: float) -> None:
        self._armed_for = due
        self._handle = self._conn.loop.call_at(due, self._ring)

    def _ring(self) -> None:
        self._handle = None
        if self.bound > self._armed_for:
            self._arm(self.bound)  # a wait began since it was armed: its bound is later
        else:
            self._conn.expire()


class H1Response:
    __slots__ = (
        "_alarm",
        "_conn",
        "_deadline",
        "_decoder",
        "_done",
        "_first_byte",
        "_idle",
        "_pool",
        "headers",
        "status",
    )

    def __init__(
        self,
        conn: H1Connection,
        pool: ConnectionPool,
        alarm: _Alarm,
        timeouts: tuple[float, float, float],
    ) -> None:
        """``timeouts``: the total deadline, the first-byte deadline (loop time) and the idle
        seconds."""
        self._conn = conn
        self._pool = pool
        self._alarm = alarm
        self._deadline, self._first_byte, self._idle = timeouts
        self._done = False
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers
        # The names are lower case already (``Headers``): no case-folding lookup per answer.
        encoding = dict.get(conn.headers, "content-encoding")
        self._decoder = None if encoding is None else _decoder(encoding)

    async def read(self) -> bytes:
        conn = self._conn
        try:
            conn.read_everything()
            while not conn.complete:
                if conn.error is not None:
                    raise connection_failed(conn.error)
                if not await self._alarm.wait(self._deadline):
                    raise UpstreamTimeoutError("upstream did not finish its answer in time")
            # Mostly one part (the answer came in one read): no list, no join.
            body = conn.take() if len(conn.parts) == 1 else b"".join(conn.take_all())
            if self._decoder is not None:
                body = self._inflate(body) + self._decoder.flush()
            return body
        finally:
            self.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        conn, alarm, deadline, idle = self._conn, self._alarm, self._deadline, self._idle
        first_byte = self._first_byte  # until the first part: the stream's first data
        try:
            while True:
                if conn.parts:
                    # Every part that has already arrived goes out as one: the caller then relays
                    # frames that came in one read with one send. Nothing waits for more.
                    part = conn.take() if len(conn.parts) == 1 else b"".join(conn.take_all())
                    if self._decoder is not None:
                        part = self._inflate(part)
                    if part:
                        first_byte = _NEVER
                        yield part
                    continue
                if conn.complete:
                    break
                if conn.error is not None:
                    raise connection_failed(conn.error)
                idle_by = conn.loop.time() + idle
                if not await alarm.wait(min(first_byte, idle_by, deadline)):
                    raise wait_expired(first_byte, idle_by, deadline, idle)
            tail = self._decoder.flush() if self._decoder is not None else b""
            self.close()
            if tail:
                yield tail
        finally:
            self.close()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        # Before the connection may serve another request: the alarm ends whatever waits on it.
        self._alarm.cancel()
        if self._conn.complete and not self._conn.parts:
            self._pool.release(self._conn)
        else:
            self._pool.discard(self._conn)

    def _inflate(self, data: bytes) -> bytes:
        assert self._decoder is not None
        try:
            return self._decoder.feed(data)
        except zlib.error as exc:
            raise connection_failed(exc) from None


class H1Transport:
    """Implements ``Transport`` with the lean HTTP/1.1 client; see the module's docstring."""

    def __init__(self, *, max_connections: int = 0, keepalive_seconds: float = 60.0) -> None:
        self._pool = ConnectionPool(
            max_connections=max_connections, keepalive_seconds=keepalive_seconds
        )
        self._targets: dict[tuple[str, str], _Target] = {}

    async def send(self, req: UpstreamRequest, timeouts: Timeouts) -> H1Response:
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + timeouts.total
        first_byte = min(deadline, now + timeouts.first_byte)
        target = self._target(req.method, req.url)
        data = _encode(req, target)
        head_only = target.head_only
        if not self._pool.take_free_slot():  # a free one taken without a coroutine
            await self._slot(first_byte)
        bounds = (deadline, first_byte, timeouts.idle)
        conn = self._pool.idle_connection(target.key, now)
        if conn is not None:
            conn.start(data, head_only)
            alarm = _Alarm(conn)
            if await self._head(conn, alarm, first_byte):
                return H1Response(conn, self._pool, alarm, bounds)
            # The keep-alive race: the peer closed it before answering; once more, on a new one.
            if not self._pool.take_free_slot():
                await self._slot(first_byte)
        conn = await self._new_connection(target.key, timeouts.connect, first_byte)
        conn.start(data, head_only)
        alarm = _Alarm(conn)
        await self._head(conn, alarm, first_byte, retry_allowed=False)
        return H1Response(conn, self._pool, alarm, bounds)

    async def _head(
        self, conn: H1Connection, alarm: _Alarm, first_byte: float, *, retry_allowed: bool = True
    ) -> bool:
        """Wait for the response head; ``False`` when a reused connection may be retried. The
        alarm stays armed for the body's waits (the response cancels it) unless this fails."""
        try:
            while not conn.head_done:
                if conn.error is not None:
                    if retry_allowed and not conn.got_bytes:
                        alarm.cancel()
                        self._pool.discard(conn)
                        return False
                    raise connection_failed(conn.error)
                if not await alarm.wait(first_byte):
                    raise UpstreamTimeoutError(
                        "upstream did not answer before the first-byte timeout"
                    )
        except BaseException:
            alarm.cancel()
            self._pool.discard(conn)
            raise
        return True

    async def _slot(self, first_byte: float) -> None:
        """Wait for a slot of the pool (none is free) until ``first_byte``."""
        try:
            async with asyncio.timeout_at(first_byte):
                await self._pool.slot()
        except TimeoutError:
            raise UpstreamTimeoutError(
                "upstream did not answer before the first-byte timeout"
            ) from None

    async def _new_connection(
        self, key: HostKey, connect_seconds: float, first_byte: float
    ) -> H1Connection:
        """A new connection (the caller holds a slot, which the connection now holds)."""
        pool = self._pool
        loop = asyncio.get_running_loop()
        connect_by = loop.time() + connect_seconds
        try:
            async with asyncio.timeout_at(min(connect_by, first_byte)):
                return await pool.connect(key)
        except TimeoutError:
            if connect_by <= first_byte:
                raise UpstreamTimeoutError("could not connect to the upstream in time") from None
            raise UpstreamTimeoutError(
                "upstream did not answer before the first-byte timeout"
            ) from None
        except OSError as exc:
            raise connection_failed(exc) from None

    def _target(self, method: str, url: str) -> _Target:
        target = self._targets.get((method, url))
        if target is None:
            target = _Target(method, url)
            if len(self._targets) < MAX_CACHED_TARGETS:
                self._targets[(method, url)] = target
        return target

    async def close(self) -> None:
        self._pool.close()
