"""Keep-alive connections per (scheme, host, port), under an optional bound on open connections.

An idle connection is reused newest first, only if the peer has not closed it and it has been
idle for less than ``keepalive_seconds``; a timer sweeps out the expired ones. The bound (0 =
none) counts the connections in use across all hosts, as aiohttp's ``limit`` does: a request
takes a slot before it takes a connection, idle or new, and gives it back with the connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from relaygate.transport.h1_connection import H1Connection

HostKey = tuple[str, str, int]


class ConnectionPool:
    def __init__(self, *, max_connections: int, keepalive_seconds: float) -> None:
        self._max = max_connections
        self._keepalive = keepalive_seconds
        self._idle: dict[HostKey, list[H1Connection]] = {}
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    def idle_connection(self, key: HostKey, now: float) -> H1Connection | None:
        """The newest idle connection to ``key`` that is still good, or ``None`` (a slot must
        be held; the connection holds it from now on)."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.usable() and now - conn.idle_since < self._keepalive:
                conn.counted = True
                return conn
            conn.close()
        return None

    async def slot(self) -> None:
        """Wait (without a timer: the caller bounds it) until another connection may be used."""
        while self._max and self._in_use >= self._max:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on a wake-up this caller can no longer use
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._in_use += 1

    def take_free_slot(self) -> bool:
        """Take a slot if one is free now (no coroutine: the common case)."""
        if self._max and self._in_use >= self._max:
            return False
        self._in_use += 1
        return True

    async def connect(self, key: HostKey) -> H1Connection:
        """A new connection to ``key`` (a slot must be held); gives the slot back on failure."""
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        try:
            tls = self._tls() if scheme == "https" else None
            _, conn = await loop.create_connection(
                lambda: H1Connection(loop, self._lost),
                host,
                port,
                ssl=tls,
                server_hostname=host if tls is not None else None,
            )
        except BaseException:
            self._give_back_slot()
            raise
        conn.host_key = key
        conn.counted = True
        return conn

    def release(self, conn: H1Connection) -> None:
        """Back to the pool if reusable, else closed."""
        if self._closed or not conn.reusable or not conn.usable():
            self.discard(conn)
            return
        conn.busy = False
        conn.counted = False
        self._give_back_slot()
        loop = conn.loop
        conn.idle_since = loop.time()
        self._idle.setdefault(conn.host_key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_at(conn.idle_since + self._keepalive, self._sweep)

    def discard(self, conn: H1Connection) -> None:
        """Close ``conn`` and free its slot (once)."""
        conn.close()
        if conn.counted:
            conn.counted = False
            self._give_back_slot()

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    def _lost(self, conn: H1Connection) -> None:
        if not conn.busy:  # an idle one: drop it now (a busy one's owner discards it)
            idle = self._idle.get(conn.host_key)
            if idle is not None and conn in idle:
                idle.remove(conn)

    def _give_back_slot(self) -> None:
        self._in_use -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        oldest: float | None = None
        for key, idle in list(self._idle.items()):
            keep = []
            for conn in idle:
                if conn.usable() and now - conn.idle_since < self._keepalive:
                    keep.append(conn)
                    oldest = conn.idle_since if oldest is None else min(oldest, conn.idle_since)
                else:
                    conn.close()
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        if oldest is not None:
            self._sweeper = loop.call_at(oldest + self._keepalive, self._sweep)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl
