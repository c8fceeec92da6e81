"""uvicorn's httptools protocol, writing a response's head and (first) body in one socket write.

uvicorn writes the status line and headers when the app sends ``http.response.start`` and the
body when it sends ``http.response.body``: two ``transport.write`` calls, and on uvloop two
``send`` system calls (each one runs the loopback TCP path of both ends), for every answer.

``HttpProtocol`` (``SERVER_OPTIONS["http"]``) keeps uvicorn's code for both messages and changes
one thing: the head of a response that declares its ``content-length`` is held until the
response's first body message and written together with it (``relaygate.web.responses.
send_body`` declares it). A stream's (chunked) head is held until the end of the loop's
current pass: the gateway sends a stream's head only once its first event has arrived and sends
that event right after, so both leave in one write, one system call and one segment less on the
way to the first token; a head whose first event is not sent in the same pass is written on its
own at the end of it, so a stream's headers still reach the caller before its first event
exists. The head of a ``HEAD`` answer and of a 204 or 304 is written at once.

It is also the request's ``CallerWatch`` (``scope[CALLER_WATCH]``): a stream's pump has the
connection's loss call it back (``watch_caller``) instead of keeping a task waiting on
``receive`` for ``http.disconnect``, which cost a task, two of its steps and an
``asyncio.Event`` wait per stream.

If the app fails between the two messages, the held head is dropped and uvicorn closes the
connection, as it does after a begun response: the caller sees the connection close instead
of a head with a cut body.

uvicorn cancels the keep-alive timer on every read and arms a new one (``loop.call_later``) on
every answer; here a read only marks the connection busy and an answer notes the time, and the
one timer armed looks when it comes due: idle long enough, the connection is closed; idle for
less, it looks again when it would be; busy, it is armed again by the next answer.

Importing this module also makes uvicorn's per-header checks skip the names and short values
they found clean before (``relaygate.web.header_checks``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from relaygate.web.header_checks import install as install_header_checks
from relaygate.web.request import CALLER_WATCH

install_header_checks()


class _Combining(asyncio.Transport):
    """The connection's socket as its request cycles see it.

    Armed with the cycle whose response comes next, it keeps the head of that response when
    uvicorn has found it sized or chunked (its ``chunked_encoding`` is set once the head is
    rendered, just before uvicorn writes it) and sends it with the next write, the body's; a
    chunked head, at the latest at the end of the loop's pass.
    """

    __slots__ = ("cycle", "head", "loop", "real")

    def __init__(self, real: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.real = real
        self.loop = loop
        self.cycle: RequestResponseCycle | None = None
        self.head = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        cycle = self.cycle
        # Before its response starts, a cycle may write only a "100 Continue": it goes through.
        if cycle is not None and cycle.response_started:
            self.cycle = None
            chunked = cycle.chunked_encoding
            if chunked is not None:
                self.head = bytes(data)
                if chunked:
                    self.loop.call_soon(self._flush_head)
                return
        head = self.head
        if head:
            self.head = b""
            data = head + data
        self.real.write(data)

    def _flush_head(self) -> None:
        """A stream's head whose first event did not come in the same pass goes on its own."""
        head = self.head
        if head and not self.real.is_closing():
            self.head = b""
            self.real.write(head)

    def is_closing(self) -> bool:
        return self.real.is_closing()

    def close(self) -> None:
        # A head still held belongs to a response its app did not finish: it is dropped.
        self.cycle = None
        self.head = b""
        self.real.close()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.real.get_extra_info(name, default)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; a response's head leaves with its (first) body, one
    keep-alive timer serves the connection, and the running request may watch for its caller
    leaving (``watch_caller``)."""

    _combining: _Combining
    _on_lost: Callable[[], None] | None
    _running: RequestResponseCycle | None
    _lost: bool
    _idle_since: float | None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._combining = _Combining(transport, self.loop)
        self._on_lost = None
        self._running = None
        self._lost = False
        self._idle_since = None

    def watch_caller(self, on_lost: Callable[[], None] | None) -> None:
        """``CallerWatch`` for the cycle now running (one runs at a time on a connection)."""
        if on_lost is not None and self._lost:
            on_lost()
            return
        self._on_lost = on_lost

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn cancels the idle timer when a read comes and arms a new one per answer; here
        # the connection is only marked busy, and the one timer armed looks when it comes due.
        self._idle_since = None

    def on_response_complete(self) -> None:
        """An answer is complete: the connection goes idle from now (or runs the next pipelined
        request). uvicorn's own handling when it has something to start or no timer is armed
        (it arms one); with a timer already armed, only the time is noted for it to look at."""
        idle = not self.pipeline
        if idle and self.timeout_keep_alive_task is not None:
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self.flow.resume_reading()
        else:
            super().on_response_complete()
            if not idle or self.transport.is_closing():
                return
        self._idle_since = self.loop.time()

    def timeout_keep_alive_handler(self) -> None:
        """Close the connection if it has been idle (no read since its last answer) for the
        keep-alive timeout; else look again when it would be, or not before its next answer."""
        self.timeout_keep_alive_task = None
        idle_since = self._idle_since
        if idle_since is None:
            return
        left = idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(
                left, self.timeout_keep_alive_handler
            )
        else:
            super().timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        timer, self.timeout_keep_alive_task = self.timeout_keep_alive_task, None
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)
        on_lost, self._on_lost = self._on_lost, None
        # The running cycle, not ``self.cycle``: that may be a pipelined one still queued.
        running = self._running
        if on_lost is not None and running is not None and not running.response_complete:
            on_lost()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # One cycle runs at a time on a connection (uvicorn queues pipelined ones until the
        # previous response is complete). A HEAD answer has no body write to carry its head.
        combining = self._combining
        combining.cycle = cycle if cycle.scope["method"] != "HEAD" else None
        cycle.transport = combining
        cycle.scope[CALLER_WATCH] = self  # type: ignore[typeddict-unknown-key]
        self._running = cycle
        super()._start_asgi_task(cycle, app)
