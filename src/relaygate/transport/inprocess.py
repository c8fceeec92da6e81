"""A transport that calls an ASGI app directly: the built-in mock upstream without sockets.

It keeps the HTTP transport's contract: the first-byte timeout runs until the app sends
``http.response.start`` (and, for ``chunks()``, its first body part), the total timeout bounds
the body and the idle timeout the wait for each part, a hang becomes ``UpstreamTimeoutError``
and an app that fails or stops mid-body a retryable ``UpstreamError``.
Closing a response tells the app the client disconnected and cancels it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from relaygate.core.errors import UpstreamError, UpstreamTimeoutError
from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import Timeouts, wait_expired

ASGIMessage = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[ASGIMessage]],
        Callable[[ASGIMessage], Awaitable[None]],
    ],
    Awaitable[None],
]

_END: Final = b""  # queued once the app has sent its last body part; real parts are never empty
_DISCONNECT: Final = {"type": "http.disconnect"}
_NEVER: Final = float("inf")


class _Broken:
    """Queued when the app stopped without finishing its body."""


_BROKEN: Final = _Broken()


class _AppCall:
    """One run of the app: feeds it the request, collects the head and the body parts."""

    __slots__ = ("_body", "_closed", "_complete", "head", "headers", "parts", "status", "task")

    def __init__(self, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        self._body: bytes | None = body
        self._closed = asyncio.Event()
        self._complete = False
        self.head: asyncio.Future[None] = loop.create_future()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.parts: asyncio.Queue[bytes | _Broken] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def receive(self) -> ASGIMessage:
        body = self._body
        if body is not None:
            self._body = None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._closed.wait()
        return dict(_DISCONNECT)

    async def send(self, message: ASGIMessage) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = int(message["status"])
            self.headers = _headers(message.get("headers", ()))
            if not self.head.done():
                self.head.set_result(None)
        elif kind == "http.response.body" and not self._complete:
            data: bytes = message.get("body", b"")
            if data:
                self.parts.put_nowait(data)
            if not message.get("more_body", False):
                self._complete = True
                self.parts.put_nowait(_END)

    def finished(self, task: asyncio.Task[None]) -> None:
        """Done callback: an app that stopped early leaves a broken marker (or a failed head)."""
        failure = None if task.cancelled() else task.exception()
        if not self.head.done():
            self.head.set_exception(_app_failed(failure))
        if not self._complete:
            self._complete = True
            self.parts.put_nowait(_BROKEN)

    def close(self) -> None:
        self._closed.set()
        if not self.head.done():
            self.head.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()


class InProcessResponse:
    """The app's answer; ``close()`` disconnects and cancels the app if it is still running."""

    __slots__ = ("_call", "_deadline", "_first_byte", "_idle", "headers", "status")

    def __init__(self, call: _AppCall, deadline: float, first_byte: float, idle: float) -> None:
        self._call = call
        self._deadline = deadline
        self._first_byte = first_byte
        self._idle = idle
        self.status = call.status
        self.headers: Mapping[str, str] = call.headers

    async def read(self) -> bytes:
        """The whole body within the total timeout; the response is closed afterwards."""
        try:
            return b"".join([part async for part in self._parts(_NEVER)])
        finally:
            self.close()

    def chunks(self) -> AsyncIterator[bytes]:
        """Body parts as the app sends them, the first by the first-byte deadline."""
        return self._parts(self._first_byte)

    async def _parts(self, first_byte: float) -> AsyncIterator[bytes]:
        parts = self._call.parts
        loop = asyncio.get_running_loop()
        while True:
            # Parts already queued need no timer: arming one per part dominated the cost.
            if not parts.empty() and loop.time() < self._deadline:
                part = parts.get_nowait()
            else:
                part = await self._next_part(parts, first_byte)
            if isinstance(part, _Broken):
                raise _dropped()
            if not part:
                return
            first_byte = _NEVER
            yield part

    async def _next_part(
        self, parts: asyncio.Queue[bytes | _Broken], first_byte: float
    ) -> bytes | _Broken:
        loop = asyncio.get_running_loop()
        idle_by = loop.time() + self._idle
        try:
            if loop.time() >= self._deadline:
                raise TimeoutError
            async with asyncio.timeout_at(min(first_byte, self._deadline, idle_by)):
                return await parts.get()
        except TimeoutError:
            self.close()
            total = "upstream did not finish its answer in time"
            raise wait_expired(first_byte, idle_by, self._deadline, self._idle, total) from None

    def close(self) -> None:
        self._call.close()


class InProcessTransport:
    """Implements ``Transport`` over an ASGI app in the same event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, req: UpstreamRequest, timeouts: Timeouts) -> InProcessResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        first_byte = min(deadline, loop.time() + timeouts.first_byte)
        call = _AppCall(req.body)
        task = loop.create_task(_run(self._app, _scope(req), call))
        call.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(call.finished)
        try:
            async with asyncio.timeout_at(first_byte):
                await call.head
        except TimeoutError:
            call.close()
            raise UpstreamTimeoutError(
                "upstream did not answer before the first-byte timeout"
            ) from None
        except BaseException:
            call.close()
            raise
        return InProcessResponse(call, deadline, first_byte, timeouts.idle)

    async def close(self) -> None:
        """Cancel every app call still running and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def _run(app: ASGIApp, scope: MutableMapping[str, Any], call: _AppCall) -> None:
    await app(scope, call.receive, call.send)


def _scope(req: UpstreamRequest) -> MutableMapping[str, Any]:
    url = urlsplit(req.url)
    host = url.hostname or "upstream"
    port = url.port or (443 if url.scheme == "https" else 80)
    headers = [(b"host", url.netloc.encode("latin-1") or b"upstream")]
    headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in req.headers.items()
        if name.lower() != "host"
    )
    headers.append((b"content-length", str(len(req.body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req.method.upper(),
        "scheme": url.scheme or "http",
        "path": unquote(url.path) or "/",
        "raw_path": (url.path or "/").encode("latin-1"),
        "query_string": url.query.encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": (host, port),
    }


def _headers(raw: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _app_failed(failure: BaseException | None) -> UpstreamError:
    reason = type(failure).__name__ if failure is not None else "no response"
    return UpstreamError(
        f"in-process upstream failed before answering ({reason})",
        status=502,
        retryable=True,
        kind="unavailable",
    )


def _dropped() -> UpstreamError:
    return UpstreamError(
        "upstream connection dropped mid-answer", status=502, retryable=True, kind="unavailable"
    )
