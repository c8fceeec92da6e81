"""A request whose body came with its head runs its first step at once, without a task; a task
goes on with it only if it suspends (``relaygate.web.protocol``)."""

from __future__ import annotations

import asyncio
import contextvars

from tests.unit.web.test_protocol import GET, connect, settle

from relaygate.web import protocol
from relaygate.web.request import Receive, Request, Scope, Send
from relaygate.web.responses import send_body

POST = b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = await Request(scope, receive).body(100)
    await send_body(send, 200, scope["path"].encode() + b":" + body, [])


async def test_an_answer_that_never_waits_is_written_before_the_loop_runs_again() -> None:
    server, transport = connect(echo)
    server.data_received(POST + b"hello")
    # No loop pass: the answer is already written, and no task was made for it.
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b"\r\n\r\n/p:hello")
    assert not server.tasks
    assert not transport.closed


async def test_a_body_still_coming_starts_the_app_in_a_task_as_uvicorn_does() -> None:
    server, transport = connect(echo)
    server.data_received(POST + b"he")
    assert transport.writes == []
    assert len(server.tasks) == 1
    server.data_received(b"llo")
    await settle()
    assert transport.writes[0].endswith(b"\r\n\r\n/p:hello")
    assert not server.tasks


async def test_a_first_step_that_suspends_goes_on_in_a_task_which_current_task_names() -> None:
    go_on = asyncio.Event()
    seen: list[object] = []

    async def waits(scope: Scope, receive: Receive, send: Send) -> None:
        before = asyncio.current_task()
        assert before is not None
        seen.append(before.cancelling())
        await go_on.wait()
        after = asyncio.current_task()
        seen.append(after)
        # The stand-in seen before the wait now speaks for the task.
        seen.append(before.cancelling() == after.cancelling() == 0)  # type: ignore[union-attr]
        seen.append(before.get_name() == after.get_name())  # type: ignore[union-attr]
        await send_body(send, 200, b"late", [])

    server, transport = connect(waits)
    server.data_received(GET)
    assert transport.writes == []
    (task,) = server.tasks
    go_on.set()
    await settle()
    assert seen == [0, task, True, True]
    assert transport.writes[0].endswith(b"\r\n\r\nlate")
    assert task.done() and not server.tasks


async def test_a_timeout_entered_in_the_first_step_cancels_the_task_it_became() -> None:
    outcome: list[str] = []

    async def times_out(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        except TimeoutError:
            outcome.append("timed out")
        await send_body(send, 504, b"", [])

    server, transport = connect(times_out)
    server.data_received(GET)
    await asyncio.wait_for(asyncio.gather(*server.tasks), 5)
    assert outcome == ["timed out"]
    assert transport.writes[0].startswith(b"HTTP/1.1 504 ")


async def test_a_cancellation_asked_in_the_first_step_lands_at_its_first_wait() -> None:
    outcome: list[str] = []

    async def cancels_itself(scope: Scope, receive: Receive, send: Send) -> None:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        await send_body(send, 200, b"", [])

    server, transport = connect(cancels_itself)
    server.data_received(GET)
    await settle()
    assert outcome == ["cancelled"]
    assert transport.writes[0].startswith(b"HTTP/1.1 200 ")


async def test_the_callers_loss_cancels_a_request_that_suspended_after_its_first_step() -> None:
    outcome: list[str] = []

    async def pumps(scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None

        def cancel() -> None:
            task.cancel()

        Request(scope, receive).caller_watch().watch_caller(cancel)  # type: ignore[union-attr]
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    server, transport = connect(pumps)
    server.data_received(GET)
    (task,) = server.tasks
    server.connection_lost(None)
    await settle()
    assert outcome == ["cancelled"]
    assert task.done()  # run_asgi takes the CancelledError (logged), as for any task
    assert transport.writes == []


async def test_an_exception_in_the_first_step_is_a_500_and_a_closed_connection() -> None:
    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    server, transport = connect(fails)
    server.data_received(GET)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 500 ")
    assert transport.writes[0].endswith(b"Internal Server Error")
    assert transport.closed
    assert not server.tasks


async def test_a_failure_of_the_first_step_itself_goes_to_the_loops_handler() -> None:
    """run_asgi's own error path failing (the 500 cannot be written): a task would keep the
    exception; the eager step hands it to the loop's exception handler."""
    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))

    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    def write(data: object) -> None:
        raise OSError("the 500 could not be written")

    server, transport = connect(fails)
    transport.write = write  # type: ignore[method-assign]
    try:
        server.data_received(GET)
    finally:
        loop.set_exception_handler(None)
    assert [type(context["exception"]) for context in reported] == [OSError]
    assert not server.tasks


async def test_two_pipelined_requests_in_one_read_are_answered_in_order() -> None:
    server, transport = connect(echo)
    server.data_received(POST + b"first" + POST.replace(b"/p", b"/q") + b"again")
    await settle()
    assert [write.rpartition(b"\r\n\r\n")[2] for write in transport.writes] == [
        b"/p:first",
        b"/q:again",
    ]
    assert not server.tasks


async def test_context_variables_set_by_one_request_are_not_seen_by_the_next() -> None:
    seen: list[str] = []

    async def sets(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(SEEN.get())
        SEEN.set(scope["path"])
        await send_body(send, 200, b"", [])

    server, transport = connect(sets)
    server.data_received(GET)
    server.data_received(GET.replace(b"/ ", b"/second "))
    await settle()
    assert seen == ["unset", "unset"]
    assert SEEN.get() == "unset"
    assert len(transport.writes) == 2


async def test_context_variables_set_before_a_suspension_are_seen_after_it() -> None:
    seen: list[str] = []

    async def sets_then_waits(scope: Scope, receive: Receive, send: Send) -> None:
        SEEN.set("mine")
        await asyncio.sleep(0)
        seen.append(SEEN.get())
        await send_body(send, 200, b"", [])

    server, _ = connect(sets_then_waits)
    server.data_received(GET)
    await settle()
    assert seen == ["mine"]
    assert SEEN.get() == "unset"


async def test_a_connection_lost_mid_body_tells_the_app_the_caller_left() -> None:
    got: list[str] = []

    async def reads(scope: Scope, receive: Receive, send: Send) -> None:
        got.append((await receive())["type"])  # the part that came
        got.append((await receive())["type"])

    server, transport = connect(reads)
    server.data_received(POST + b"he")
    await settle()
    server.connection_lost(None)
    await settle()
    assert got == ["http.request", "http.disconnect"]
    assert transport.writes == []


async def test_where_no_eager_start_is_available_a_request_starts_in_a_task() -> None:
    """An interpreter with neither asyncio's eager tasks (3.12+) nor CPython 3.11's table of
    current tasks: requests start as uvicorn starts them."""
    saved = protocol._first_step
    protocol._first_step = None
    try:
        server, transport = connect(echo)
        server.data_received(POST + b"hello")
        assert transport.writes == []
        assert len(server.tasks) == 1
        await settle()
    finally:
        protocol._first_step = saved
    assert transport.writes[0].endswith(b"\r\n\r\n/p:hello")
    assert not server.tasks
