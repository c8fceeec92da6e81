"""The per-request JSON log line, written without stdlib logging's per-record machinery.

A ``RequestLog`` turns a request's fields into the same line ``JsonFormatter`` writes
(``ts``, ``level``, ``logger``, ``msg``, then the fields) with one ``orjson.dumps``, queues it, and
a writer thread hands the queued lines to the sink in one write every ``flush_seconds``. The
writer polls while lines keep coming, so queueing a line is a deque append; after ``quiet_polls``
empty polls it sleeps until the next line wakes it. Only that line pays for setting a
``threading.Event`` (a lock and a futex call: ~3% of the event loop's samples in a profile of
the streaming bench, when every line woke the writer).

The event loop never waits on the sink: when the sink blocks (a full pipe) and ``max_pending``
lines are queued, further lines are dropped and counted, and the count is written as a warning
line once the sink takes lines again. ``flush`` writes whatever is queued at once (the lifespan's
shutdown calls it), ``close`` stops the writer after a last flush.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from relaygate.core.redact import Redactor

Sink = Callable[[bytes], None]
# Ten polls a second while lines come: each poll is a thread wake-up (~30 us of CPU on a small
# VM, and the GIL taken from the loop), a fixed cost that at 20 ms was ~0.1 ms per request at
# 37 streams a second. A line reaches the sink at most ~0.1 s after it was queued; shutdown
# (``flush``, ``close``) writes whatever is queued at once.
FLUSH_SECONDS = 0.1
QUIET_POLLS = 10  # one second at 100 ms
CLOSE_SECONDS = 5.0
MAX_PENDING = 20_000  # lines are clipped to ~2 kB: at most ~40 MB held while the sink blocks
_LOGGER = "relaygate.request"
# The timestamp's milliseconds and zone, looked up: a ``:03d`` format per line cost ~2% of a
# refusal's instructions on the event loop.
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))
REQUEST_LINE_HEAD = {"level": "info", "logger": _LOGGER, "msg": "request"}
"""A request line's fields after its ``ts`` and before the request's own."""


class RequestLog:
    def __init__(
        self,
        sink: Sink,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        quiet_polls: int = QUIET_POLLS,
        max_pending: int = MAX_PENDING,
        redactor: Redactor | None = None,
    ) -> None:
        self.redactor = redactor
        self._refused = 0  # lines not queued (the queue was full): counted on the event loop
        self._lost = 0  # queued lines the sink refused: counted by the writer
        self._sink = sink
        self._flush_seconds = flush_seconds
        self._quiet_polls = quiet_polls
        self._max_pending = max_pending
        self._pending: deque[bytes] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()  # one writer at a time: the thread or a flush
        self._reported_drops = 0
        self._thread: threading.Thread | None = None
        # The writer polls while lines keep coming and sleeps on ``_wake`` once they stop; only
        # then does a line have to wake it (a lock and a futex call on the event loop).
        self._asleep = True
        self._closed = False
        self._second = -1
        self._second_text = ""
        _LIVE.add(self)

    def write(self, fields: dict[str, Any]) -> None:
        """Queue one request line (called on the event loop; never blocks on the sink)."""
        if self.full():
            return
        entry: dict[str, Any] = {"ts": self.timestamp(), **REQUEST_LINE_HEAD}
        entry.update(fields)
        self.write_entry(entry)

    def full(self) -> bool:
        """Whether a line would be refused now (counted as dropped): the caller may skip
        building it."""
        if len(self._pending) >= self._max_pending:
            self._refused += 1
            return True
        return False

    def write_entry(self, entry: dict[str, Any]) -> None:
        """Queue a whole line: ``ts`` (``timestamp``), then ``REQUEST_LINE_HEAD``'s fields, then
        the request's (called after ``full`` said there is room)."""
        line = orjson.dumps(entry, default=str, option=orjson.OPT_APPEND_NEWLINE)
        if self.redactor is not None:
            line = self.redactor.raw(line)
        self._pending.append(line)
        if self._closed:
            self.flush()
        elif self._asleep:
            self._asleep = False
            self._start_writer()
            self._wake.set()

    @property
    def dropped(self) -> int:
        """Request lines that never reached the sink."""
        return self._refused + self._lost

    def flush(self, timeout: float = CLOSE_SECONDS) -> None:
        """Write every queued line now, on the caller's thread. When the writer thread has been
        stuck in the sink for ``timeout`` seconds, give up: the lines stay queued."""
        if not self._write_lock.acquire(timeout=timeout):
            return
        try:
            self._drain()
        finally:
            self._write_lock.release()

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Stop the writer thread and write what is left; later lines are written at once.
        A sink that blocks holds the caller (the process's exit) at most about ``timeout``."""
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(timeout=timeout)
        self.flush(timeout=0 if thread is not None and thread.is_alive() else timeout)

    def _forget_writer(self) -> None:
        """In a forked child: the parent's writer thread and its lock state did not come along."""
        self._thread = None
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._asleep = True
        if self._pending and not self._closed:
            self._asleep = False
            self._start_writer()
            self._wake.set()

    def timestamp(self, now: float | None = None) -> str:
        """``now`` (default: the time now), as a line's ``ts``."""
        if now is None:
            now = time.time()
        second = int(now)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._second_text + _MILLIS[int((now - second) * 1000)]

    def _start_writer(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="relaygate-request-log", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        quiet = 0
        while not self._stop.is_set():
            if quiet >= self._quiet_polls:
                self._sleep_until_a_line()
                quiet = 0
            # Let the lines of one poll period gather into one write.
            self._stop.wait(self._flush_seconds)
            quiet = 0 if self._pending else quiet + 1
            self.flush()

    def _sleep_until_a_line(self) -> None:
        self._wake.clear()
        self._asleep = True
        # A line queued before ``_asleep`` was seen set would not wake the writer: look again.
        if not self._pending:
            self._wake.wait()
        self._asleep = False

    def _drain(self) -> None:
        pending = self._pending
        lines = [pending.popleft() for _ in range(len(pending))]
        request_lines = len(lines)
        dropped = self.dropped
        if dropped > self._reported_drops:
            lines.append(_drop_line(dropped))
        if not lines:
            return
        try:
            self._sink(b"".join(lines))
        except (OSError, ValueError):  # a closed or broken sink: the lines are lost, counted
            self._lost += request_lines
            return
        self._reported_drops = dropped


_LIVE: weakref.WeakSet[RequestLog] = weakref.WeakSet()


def _forget_writers_in_child() -> None:
    for log in list(_LIVE):
        log._forget_writer()


os.register_at_fork(after_in_child=_forget_writers_in_child)


def _drop_line(dropped: int) -> bytes:
    entry = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": "warning",
        "logger": _LOGGER,
        "msg": "request log lines dropped (the log's sink was not keeping up)",
        "dropped_total": dropped,
    }
    return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
