"""The request log's line, its batching writer thread, its bound and its shutdown flush."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from tests.waiting import wait_until

from relaygate.app import create_app
from relaygate.core.context import RequestContext
from relaygate.core.redact import Redactor
from relaygate.core.types import Usage
from relaygate.observability.logging import (
    JsonFormatter,
    flush_request_log,
    install_request_log,
    log_request,
    request_fields,
)
from relaygate.observability.request_log import RequestLog
from relaygate.settings import Settings

Message = MutableMapping[str, Any]
ONE_MODEL = {"name": "m", "deployments": [{"provider": "mock"}]}


class MemorySink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.writes.append(data)

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for data in self.writes for line in data.splitlines()]


class BlockedSink(MemorySink):
    """Blocks in its first write until released, like a pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, data: bytes) -> None:
        self.entered.set()
        self.release.wait(timeout=30)
        super().__call__(data)


def _ctx(request_id: str = "req_1") -> RequestContext:
    ctx = RequestContext(request_id, "openai.chat", "openai")
    ctx.key_name = "team"
    ctx.model_requested = "gpt"
    ctx.status = 200
    ctx.outcome = "ok"
    return ctx


def test_the_line_is_the_one_the_json_formatter_writes() -> None:
    sink = MemorySink()
    log = RequestLog(sink)
    fields = request_fields(_ctx())
    log.write(fields)
    log.close()
    record = logging.LogRecord("relaygate.request", logging.INFO, __file__, 1, "request", (), None)
    record.fields = fields
    expected = json.loads(JsonFormatter().format(record))
    [written] = sink.entries()
    assert list(written) == list(expected)
    assert {k: v for k, v in written.items() if k != "ts"} == {
        k: v for k, v in expected.items() if k != "ts"
    }
    assert written["ts"].endswith("Z") and len(written["ts"]) == len(expected["ts"])
    assert sink.writes[0].endswith(b"\n")


def test_the_writer_thread_writes_queued_lines_in_one_batch() -> None:
    sink = MemorySink()
    log = RequestLog(sink, flush_seconds=0.05)
    try:
        for n in range(50):
            log.write({"request_id": f"req_{n}"})
        wait_until(lambda: len(sink.entries()) == 50, what="the batch written")
        assert len(sink.writes) <= 2  # gathered, not one write per line
    finally:
        log.close()


class CountingEvent(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def set(self) -> None:
        self.sets += 1
        super().set()


def test_lines_queued_while_the_writer_polls_do_not_wake_it() -> None:
    sink = MemorySink()
    log = RequestLog(sink, flush_seconds=0.005, quiet_polls=1_000)
    wake = log._wake = CountingEvent()
    try:
        log.write({"request_id": "req_first"})  # starts the writer, which then polls
        wait_until(lambda: len(sink.entries()) == 1, what="the first line written")
        for n in range(20):
            log.write({"request_id": f"req_{n}"})
        wait_until(lambda: len(sink.entries()) == 21, what="the polled lines written")
        assert wake.sets == 1
    finally:
        log.close()


def test_a_writer_asleep_after_a_quiet_spell_is_woken_by_the_next_line() -> None:
    sink = MemorySink()
    log = RequestLog(sink, flush_seconds=0.001, quiet_polls=3)
    try:
        log.write({"request_id": "req_before"})
        wait_until(lambda: log._asleep, what="the writer asleep after three empty polls")
        log.write({"request_id": "req_after"})
        wait_until(lambda: len(sink.entries()) == 2, what="the waking line written")
        assert [e["request_id"] for e in sink.entries()] == ["req_before", "req_after"]
    finally:
        log.close()


def test_close_writes_every_queued_line() -> None:
    sink = MemorySink()
    log = RequestLog(sink, flush_seconds=60)  # the thread would wait a minute
    for n in range(1_000):
        log.write({"request_id": f"req_{n}"})
    log.close()
    assert [e["request_id"] for e in sink.entries()] == [f"req_{n}" for n in range(1_000)]
    log.write({"request_id": "late"})  # after close: written at once
    assert sink.entries()[-1]["request_id"] == "late"


def test_a_blocked_sink_bounds_the_queue_and_the_drops_are_counted_and_reported() -> None:
    sink = BlockedSink()
    log = RequestLog(sink, flush_seconds=0, max_pending=5)
    log.write({"request_id": "first"})
    assert sink.entered.wait(timeout=10)  # the writer holds "first" and is stuck in the sink
    for n in range(12):
        log.write({"request_id": f"req_{n}"})
    assert log.dropped == 7
    sink.release.set()
    log.close()
    entries = sink.entries()
    assert [e["request_id"] for e in entries if "request_id" in e] == [
        "first",
        *(f"req_{n}" for n in range(5)),
    ]
    [warning] = [e for e in entries if e["level"] == "warning"]
    assert warning["dropped_total"] == 7


def test_lines_a_broken_sink_refuses_are_counted() -> None:
    def broken(data: bytes) -> None:
        raise BrokenPipeError

    log = RequestLog(broken, flush_seconds=60)
    for n in range(3):
        log.write({"request_id": f"req_{n}"})
    log.close()
    assert log.dropped == 3


def test_secrets_are_redacted() -> None:
    sink = MemorySink()
    log = RequestLog(sink, redactor=Redactor(["sk-secret-123456"]))
    log.write({"error": "upstream quoted sk-secret-123456"})
    log.close()
    assert b"sk-secret" not in b"".join(sink.writes)
    assert sink.entries()[0]["error"] == "upstream quoted [redacted]"


@pytest.fixture
def installed() -> Iterator[MemorySink]:
    sink = MemorySink()
    install_request_log(RequestLog(sink, flush_seconds=60))
    yield sink
    install_request_log(None)


def test_log_request_goes_to_the_installed_log_and_flushes_on_demand(
    installed: MemorySink,
) -> None:
    logger = logging.getLogger("relaygate.request")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        log_request(logger, _ctx("req_a"))
        log_request(logger, _ctx("req_b"))
        flush_request_log()
    finally:
        logger.setLevel(level)
    assert [e["request_id"] for e in installed.entries()] == ["req_a", "req_b"]


@pytest.mark.parametrize("full", [False, True])
def test_the_installed_logs_line_is_the_formatters_line(installed: MemorySink, full: bool) -> None:
    """``log_request`` builds the installed log's line as one dict: the same fields in the same
    order as the stdlib path's ``request_fields`` under ``JsonFormatter``'s head."""
    ctx = _ctx("req_full")
    if full:
        ctx.model_requested = "m" * 500  # clipped
        ctx.first_token_at = ctx.started + 0.0123
        ctx.error_kind = "upstream_error"
        ctx.usage = Usage(input_tokens=3, output_tokens=5, cache_read_tokens=1)
        ctx.cost_usd = 0.000123456789
        ctx.cache_status = "coalesced"
        ctx.coalesced_with = "req_other"
        ctx.upstream_seconds = 0.5  # more than elapsed: the overhead is 0, not negative
    logger = logging.getLogger("relaygate.request")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        log_request(logger, ctx, 0.25)
        flush_request_log()
    finally:
        logger.setLevel(level)
    record = logging.LogRecord("relaygate.request", logging.INFO, __file__, 1, "request", (), None)
    record.fields = request_fields(ctx, 0.25)
    expected = json.loads(JsonFormatter().format(record))
    [written] = installed.entries()
    assert list(written) == list(expected)
    assert {k: v for k, v in written.items() if k != "ts"} == {
        k: v for k, v in expected.items() if k != "ts"
    }
    assert written["overhead_ms"] == (0.0 if full else 250.0)


def test_log_request_respects_the_loggers_level(installed: MemorySink) -> None:
    logger = logging.getLogger("relaygate.request")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        log_request(logger, _ctx())
        flush_request_log()
    finally:
        logger.setLevel(level)
    assert installed.entries() == []


async def test_the_lifespan_shutdown_writes_the_queued_lines() -> None:
    sink = MemorySink()
    log = RequestLog(sink, flush_seconds=60)  # the writer thread would wait a minute
    install_request_log(log)
    try:
        log.write({"request_id": "req_last"})
        app = create_app(
            Settings.model_validate(
                {"models": [{"name": "m", "deployments": [{"provider": "mock"}]}]}
            )
        )
        sent: list[dict[str, Any]] = []

        async def receive() -> Message:
            return {"type": "lifespan.shutdown"}

        async def send(message: Message) -> None:
            sent.append(dict(message))

        await app({"type": "lifespan"}, receive, send)
    finally:
        install_request_log(None)
    assert sent == [{"type": "lifespan.shutdown.complete"}]
    assert [e["request_id"] for e in sink.entries()] == ["req_last"]


def test_close_gives_up_on_a_sink_that_stays_blocked() -> None:
    sink = BlockedSink()
    log = RequestLog(sink, flush_seconds=0)
    log.write({"request_id": "stuck"})
    assert sink.entered.wait(timeout=10)
    log.write({"request_id": "queued"})
    log.close(timeout=0.05)  # returns although the writer is still inside the sink
    sink.release.set()
    assert [e["request_id"] for e in wait_until(sink.entries)] == ["stuck"]


def test_a_forked_child_writes_its_lines_with_its_own_writer() -> None:
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    entered, release = threading.Event(), threading.Event()

    def sink(data: bytes) -> None:
        if os.getpid() == parent:  # the parent's writer holds the write lock in here
            entered.set()
            release.wait(timeout=30)
        else:
            os.write(write_fd, data)

    log = RequestLog(sink, flush_seconds=0)
    log.write({"request_id": "parent"})
    assert entered.wait(timeout=10)
    child = os.fork()
    if child == 0:
        try:
            log.write({"request_id": "child"})
            log.close(timeout=10)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    os.close(write_fd)
    release.set()
    log.close()
    with os.fdopen(read_fd, "rb") as written:
        assert [json.loads(line)["request_id"] for line in written] == ["child"]


@pytest.mark.parametrize("now", [0.0, 1_765_000_000.0, 1_765_000_000.0005, 1_765_000_000.9999])
def test_the_timestamp_is_the_json_formatters(now: float) -> None:
    record = logging.LogRecord("relaygate.request", logging.INFO, __file__, 1, "request", (), None)
    record.created, record.msecs = now, (now - int(now)) * 1000
    expected = json.loads(JsonFormatter().format(record))["ts"]
    assert RequestLog(MemorySink()).timestamp(now) == expected


@pytest.mark.parametrize(
    ("elapsed", "upstream", "waited"),
    [(0.0, 0.0, 0.0), (0.0123456, 0.01, 0.0), (1.2345678, 0.5, 0.25), (87.654321, 80.0, 9.0)],
)
def test_the_milliseconds_are_rounded_as_round_rounds_them(
    monkeypatch: pytest.MonkeyPatch, elapsed: float, upstream: float, waited: float
) -> None:
    ctx = _ctx()
    ctx.upstream_seconds, ctx.waited_seconds = upstream, waited
    ctx.first_token_at = ctx.started + elapsed / 2
    monkeypatch.setattr(RequestContext, "elapsed", lambda self: elapsed)
    fields = request_fields(ctx)
    assert fields["latency_ms"] == round(elapsed * 1000, 2)
    assert fields["upstream_ms"] == round(upstream * 1000, 2)
    assert fields["overhead_ms"] == round(max(0.0, elapsed - upstream - waited) * 1000, 3)
    assert fields["ttft_ms"] == round(elapsed / 2 * 1000, 2)
