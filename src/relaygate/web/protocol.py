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

A request whose whole body came with its head in one read (almost all: wrk, aiohttp, the SDKs'
small bodies) is started eagerly: after the read is parsed, its first step runs at once, in a
copy of the context as a task's would, and an answer that never waits (a refusal, a cache hit)
costs no loop pass and no done-callback. On Python 3.12 and later that is asyncio's own eager
task (``asyncio.Task(..., eager_start=True)``). On 3.11 the first step runs outside any task,
``asyncio.current_task()`` answering a stand-in (``_EagerTask``), and a task is made only if the
step suspends (an upstream to wait for): it resumes the coroutine where it stopped
(``_resumed``), and the stand-in then forwards to it (``cancel``, ``cancelling``, ``uncancel``:
``asyncio.timeout`` and the stream pump's cancellation); where the stand-in cannot be installed
(an interpreter without ``asyncio.tasks._current_tasks``), requests start as uvicorn starts them.
A request whose body is still coming, a pipelined one (started when the previous answer
completes) and one on a closing connection start in a task, as uvicorn starts them.

uvicorn cancels the keep-alive timer on every read and arms a new one (``loop.call_later``) on
every answer; here a read only marks the connection busy and an answer notes the time, and the
one timer armed looks when it comes due: idle long enough, the connection is closed; idle for
less, it looks again when it would be; busy, it is armed again by the next answer.

Importing this module also makes uvicorn's per-header checks skip the names and short values
they found clean before (``relaygate.web.header_checks``).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

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


class _EagerTask:
    """``asyncio.current_task()`` while a request's first step runs outside any task.

    What is done to it before the step ends (a cancellation asked for by the step itself: a
    caller already gone) is done to the task it becomes if it suspends; once that task exists,
    everything is forwarded to it. ``asyncio.timeout`` and aiohttp's timers keep the current
    task to cancel it later: by then the step has suspended and the task exists.
    """

    __slots__ = ("cancels", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.cancels = 0

    def cancel(self, msg: object = None) -> bool:
        task = self.task
        if task is not None:
            return task.cancel(msg)
        self.cancels += 1
        return True

    def cancelling(self) -> int:
        task = self.task
        return self.cancels if task is None else task.cancelling()

    def uncancel(self) -> int:
        task = self.task
        if task is not None:
            return task.uncancel()
        if self.cancels:
            self.cancels -= 1
        return self.cancels

    def done(self) -> bool:
        task = self.task
        return task is not None and task.done()

    def become(self, task: asyncio.Task[None]) -> None:
        self.task = task
        for _ in range(self.cancels):
            task.cancel()

    def __getattr__(self, name: str) -> Any:
        task = self.task
        if task is None:
            raise AttributeError(name)
        return getattr(task, name)


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, None, None]:
    """A coroutine suspended on ``waiting`` outside any task, for a task to go on with: the task
    first gets what the coroutine waits on, then drives the coroutine itself (``yield from``,
    the coroutine's steps not going through Python here). Primed (sent ``None`` once) before the
    task has it, so that a cancellation the task throws in before its first step reaches the
    coroutine too."""
    thrown: BaseException | None = None
    try:
        yield  # primed to here
    except BaseException as exc:
        thrown = exc
    while True:
        if thrown is not None:
            try:
                waiting = coro.throw(thrown)
            except StopIteration:
                return
            thrown = None
        try:
            yield waiting
        except BaseException as exc:
            thrown = exc
            continue
        break
    yield from coro


_FirstStep = Callable[
    [asyncio.AbstractEventLoop, Coroutine[Any, Any, None], contextvars.Context],
    "asyncio.Task[None] | None",
]
"""Runs a request's first step now, in the context given; the task going on with it, or None if
the step finished the request."""

_first_step: _FirstStep | None


def _report_first_step_failure(loop: asyncio.AbstractEventLoop, failure: BaseException) -> None:
    """run_asgi catches the app's errors; this is its own (the 500's write) failing, which a
    task started by uvicorn would have kept as its exception: the loop's handler hears of it."""
    loop.call_exception_handler(
        {"message": "Exception in a request's first step", "exception": failure}
    )


if sys.version_info >= (3, 12):

    def _eager_task(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, None],
        context: contextvars.Context,
    ) -> asyncio.Task[None] | None:
        # asyncio's eager task: its first step runs in the constructor, the task current.
        task = asyncio.Task(coro, loop=loop, context=context, eager_start=True)
        if not task.done():
            return task
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            # Reported now, as on 3.11, not whenever the finished task is collected.
            _report_first_step_failure(loop, failure)
        return None

    _first_step = _eager_task

else:
    # What asyncio.current_task() reads on CPython 3.11 (the C module's dict, per loop).
    _current_tasks: dict[asyncio.AbstractEventLoop, object] | None = getattr(
        asyncio.tasks, "_current_tasks", None
    )

    def _stand_in_step(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, None],
        context: contextvars.Context,
    ) -> asyncio.Task[None] | None:
        current = _current_tasks
        assert current is not None
        stand_in = _EagerTask()
        # Outside a task on a served connection; a test may feed the protocol from one.
        outer = current.get(loop)
        current[loop] = stand_in
        try:
            waiting = context.run(coro.send, None)
        except StopIteration:
            return None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            _report_first_step_failure(loop, exc)
            return None
        finally:
            if outer is None:
                del current[loop]
            else:
                current[loop] = outer
        resumed = _resumed(coro, waiting)
        resumed.send(None)
        task = loop.create_task(resumed, context=context)
        stand_in.become(task)
        return task

    _first_step = _stand_in_step if _current_tasks is not None else None


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; a response's head leaves with its (first) body, a request
    whose body is all there starts at once, one keep-alive timer serves the connection, and the
    running request may watch for its caller leaving (``watch_caller``)."""

    _combining: _Combining
    _on_lost: Callable[[], None] | None
    _running: RequestResponseCycle | None
    _lost: bool
    _feeding: bool
    _starting: tuple[RequestResponseCycle, ASGI3Application] | None
    _idle_since: float | None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._combining = _Combining(transport, self.loop)
        self._on_lost = None
        self._running = None
        self._lost = False
        self._feeding = False
        self._starting = None
        self._idle_since = None

    def data_received(self, data: bytes) -> None:
        # A request the parse completes is started once the read is parsed, eagerly if its body
        # is all there (the parser's callbacks are not the place to run an app).
        self._feeding = True
        try:
            super().data_received(data)
        finally:
            self._feeding = False
            starting = self._starting
            if starting is not None:
                self._starting = None
                cycle, app = starting
                first_step = _first_step
                if first_step is None or cycle.more_body or self.transport.is_closing():
                    super()._start_asgi_task(cycle, app)
                else:
                    self._start_eagerly(first_step, cycle, app)

    def _start_eagerly(
        self, first_step: _FirstStep, cycle: RequestResponseCycle, app: ASGI3Application
    ) -> None:
        """Run the request's first step now; a task goes on with it only if it suspends."""
        context = (
            contextvars.Context() if self.config.reset_contextvars else contextvars.copy_context()
        )
        task = first_step(self.loop, cycle.run_asgi(app), context)
        if task is not None:
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

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
        if self._feeding:
            # From the parse (on_headers_complete): started once the read is parsed.
            self._starting = (cycle, app)
        else:
            # A pipelined request, after the previous answer: in a task, as uvicorn does.
            super()._start_asgi_task(cycle, app)
