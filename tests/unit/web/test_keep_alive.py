"""An idle keep-alive connection is closed after ``timeout_keep_alive`` without a read, as uvicorn
does, with one timer per connection looked at when it comes due instead of one per answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvicorn
from tests.unit.web.test_protocol import GET, RecordingTransport
from uvicorn.server import ServerState

from relaygate.web.protocol import HttpProtocol
from relaygate.web.request import Receive, Scope, Send
from relaygate.web.responses import send_body

TIMEOUT = 5


class Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ClockLoop:
    """The running loop, with a clock and timers the test moves by hand."""

    def __init__(self, real: asyncio.AbstractEventLoop) -> None:
        self.real = real
        self.now = 100.0
        self.timers: list[Timer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in list(self.timers):
            if timer.when <= self.now and not timer.cancelled:
                self.timers.remove(timer)
                timer.callback()

    def armed(self) -> int:
        return sum(not timer.cancelled for timer in self.timers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send_body(send, 200, b"", [])


def connect(app: Any = answer) -> tuple[HttpProtocol, RecordingTransport, ClockLoop]:
    loop = ClockLoop(asyncio.get_running_loop())
    config = uvicorn.Config(
        app, http=HttpProtocol, lifespan="off", log_level="critical", timeout_keep_alive=TIMEOUT
    )
    server = HttpProtocol(
        config=config,
        server_state=ServerState(),
        app_state={},
        _loop=loop,  # type: ignore[arg-type]
    )
    transport = RecordingTransport()
    server.connection_made(transport)
    return server, transport, loop


async def request(server: HttpProtocol, data: bytes) -> None:
    """Feed a request and let its task (uvicorn's start) answer it."""
    server.data_received(data)
    await asyncio.gather(*server.tasks)


def closes_after_the_timeout(loop: ClockLoop, transport: RecordingTransport) -> None:
    """The connection is open just before the keep-alive timeout and closed at it."""
    loop.advance(TIMEOUT - 0.1)
    assert not transport.closed
    loop.advance(0.1)
    assert transport.closed


async def test_an_idle_connection_is_closed_after_the_timeout() -> None:
    server, transport, loop = connect()
    await request(server, GET)
    assert len(transport.writes) == 1
    closes_after_the_timeout(loop, transport)


async def test_answers_in_a_row_arm_one_timer_and_the_last_answer_starts_the_idle_time() -> None:
    server, transport, loop = connect()
    for _ in range(5):
        await request(server, GET)
        loop.advance(1.0)
    assert len(transport.writes) == 5
    assert loop.armed() == 1
    # The first answer's deadline (now + 0) has passed: not idle that long, looked at again.
    loop.advance(TIMEOUT - 5 + 1.0)
    assert not transport.closed
    assert loop.armed() == 1
    loop.advance(TIMEOUT - 2.0)
    assert transport.closed


async def test_a_request_in_progress_is_not_closed_and_is_timed_from_its_answer() -> None:
    go_on = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await go_on.wait()
        await send_body(send, 200, b"", [])

    server, transport, loop = connect(slow)
    server.data_received(GET)
    server.data_received(GET.replace(b"/ ", b"/slow "))
    loop.advance(TIMEOUT * 3)
    assert not transport.closed
    assert loop.armed() == 0  # busy: armed again by the next answer
    go_on.set()
    await asyncio.gather(*server.tasks)
    assert len(transport.writes) == 2
    closes_after_the_timeout(loop, transport)


async def test_a_lost_connection_leaves_no_timer() -> None:
    server, _, loop = connect()
    await request(server, GET)
    assert loop.armed() == 1
    server.connection_lost(ConnectionResetError())
    assert loop.armed() == 0
