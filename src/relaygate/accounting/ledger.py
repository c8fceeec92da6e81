"""The ledger writer: rows go to a bounded in-memory queue and one background task writes them.

``record`` never awaits and never raises: it appends to a deque (or, when the deque is full, to
the spill file). The writer task takes up to ``batch_size`` rows at a time, as soon as that many
wait or ``flush_interval_seconds`` after the last write, and inserts them in one statement. When
the database cannot take a batch, the batch goes to the spill file and the writer keeps spilling
until a retry (every ``retry_seconds``) succeeds; then the spill files are replayed. ``stop``
writes (or spills) everything still queued before it returns.

A batch the database rejects for its values (not for being unreachable) is split in halves until
the rejected rows stand alone; those go to the dead-letter file (``dead_letter.py``) and the rest
is written. When the spill files reach their cap (``spill_max_bytes``), rows the database cannot
take wait in the memory queue (up to ``queue_size``) for the next retry; only past that, or at a
shutdown with the database still down, are rows dropped: counted and logged at error level with
their cost (``ledger_alarms.py``), never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relaygate.accounting.dead_letter import DeadLetterFile
from relaygate.accounting.ledger_alarms import DropAlarm, SpillAlarm
from relaygate.accounting.spill import ClaimedFile, SpillFile
from relaygate.core.background import BackgroundTask
from relaygate.settings.accounting import LedgerSettings
from relaygate.store.errors import StoreDataError, StoreError
from relaygate.store.ledger_records import LedgerRow
from relaygate.store.protocols import LedgerStore

logger = logging.getLogger("relaygate.ledger")
# At shutdown a hanging database gets less patience: the rows go to disk instead.
DRAIN_WRITE_TIMEOUT_SECONDS = 5.0


@dataclass(slots=True)
class LedgerStats:
    """Counters for metrics, the admin API and the benchmark."""

    recorded: int = 0
    written: int = 0
    batches: int = 0
    spilled: int = 0
    replayed: int = 0
    quarantined: int = 0
    dropped: int = 0
    write_seconds: float = 0.0
    healthy: bool = True


class LedgerWriter:
    """Owns the queue and the writer task; built and drained by ``Services``."""

    def __init__(
        self,
        store: LedgerStore,
        spill: SpillFile,
        settings: LedgerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._spill = spill
        self._dead_letter = DeadLetterFile(spill.directory, settings.dead_letter_file)
        self._settings = settings
        self._clock = clock
        self._rows: deque[LedgerRow] = deque()
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._loop = BackgroundTask("relaygate-ledger-writer", self._run)
        self._spill_alarm = SpillAlarm(spill)
        self._spill_refused = False  # the last spill left rows out (cap reached or disk error)
        self._drops = DropAlarm()
        self._retry_at = 0.0
        self._replay_needed = True
        self.stats = LedgerStats()

    @property
    def queued(self) -> int:
        return len(self._rows)

    @property
    def spill(self) -> SpillFile:
        return self._spill

    def record(self, row: LedgerRow) -> None:
        """Queue one row; never blocks, never raises. A full queue spills to disk instead."""
        self.stats.recorded += 1
        rows = self._rows
        if len(rows) >= self._settings.queue_size or self._stopping:
            self._set_aside([row])
            return
        rows.append(row)
        if len(rows) >= self._settings.batch_size:
            self._ready.set()

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Write or spill every queued row, then close the spill file; safe to call twice."""
        self._stopping = True
        self._ready.set()
        self._stopped.set()
        await self._loop.join()
        await self._drain()
        self._spill.close()
        self._drops.report()

    async def flush(self) -> None:
        """Write everything queued now (tests and the benchmark)."""
        while self._rows:
            await self._write(self._take())

    async def _run(self) -> None:
        while not self._stopping:
            await self._wait()
            self._ready.clear()
            if self._stopping:
                break
            self._drops.report()
            try:
                if self._rows:
                    await self._write(self._take())
                if self._replay_needed and (self.stats.healthy or self._clock() >= self._retry_at):
                    await self._replay()
            except Exception:
                # The writer must outlive any surprise, or rows would pile up unwritten.
                logger.exception("ledger writer iteration failed; continuing")

    async def _wait(self) -> None:
        if self._holding():
            # Nowhere to put rows before the next retry: waking per request would only churn.
            event, timeout = self._stopped, max(0.0, self._retry_at - self._clock())
        elif len(self._rows) < self._settings.batch_size:
            event, timeout = self._ready, self._settings.flush_interval_seconds
        else:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    def _holding(self) -> bool:
        """The database is down and the spill files take no more: rows wait in memory."""
        return not self.stats.healthy and self._spill_refused and bool(self._rows)

    async def _drain(self) -> None:
        while self._rows:
            batch = self._take()
            if not self.stats.healthy:
                self._set_aside(batch)
                continue
            limit = min(self._settings.write_timeout_seconds, DRAIN_WRITE_TIMEOUT_SECONDS)
            await self._write(batch, limit)

    def _take(self) -> list[LedgerRow]:
        rows = self._rows
        count = min(len(rows), self._settings.batch_size)
        return [rows.popleft() for _ in range(count)]

    async def _write(self, batch: list[LedgerRow], limit: float | None = None) -> None:
        if not self.stats.healthy and self._clock() < self._retry_at:
            self._set_aside(batch)
            return
        if not await self._insert(batch, limit):
            self._set_aside(batch)

    async def _insert(self, batch: Sequence[LedgerRow], limit: float | None = None) -> bool:
        """True when every row was written or quarantined; False when the database cannot be
        used now (the rows are the caller's to keep)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit or self._settings.write_timeout_seconds):
                written = await self._insert_or_split(batch)
        except (StoreError, TimeoutError) as exc:
            self._mark_down(exc)
            return False
        except Exception as exc:
            # A driver surprise must not cost the batch: it goes to disk like any failure.
            logger.exception("unexpected error writing %d ledger row(s)", len(batch))
            self._mark_down(exc)
            return False
        self.stats.written += written
        self.stats.batches += 1
        self.stats.write_seconds += time.perf_counter() - started
        if not self.stats.healthy:
            logger.warning("ledger database is back; replaying spilled rows")
            self.stats.healthy = True
            self._replay_needed = True
        return True

    async def _insert_or_split(self, rows: Sequence[LedgerRow]) -> int:
        """Insert ``rows``; when the database rejects their values, halve them until each rejected
        row stands alone and quarantine it. Returns how many rows were written."""
        try:
            await self._store.insert_rows(rows)
        except StoreDataError as exc:
            if len(rows) == 1:
                self._quarantine(rows[0], exc)
                return 0
            middle = len(rows) // 2
            first = await self._insert_or_split(rows[:middle])
            return first + await self._insert_or_split(rows[middle:])
        return len(rows)

    def _quarantine(self, row: LedgerRow, exc: StoreDataError) -> None:
        try:
            self._dead_letter.append([row], str(exc))
        except OSError as error:
            self.stats.dropped += 1
            self._drops.dropped([row], f"rejected by the database, dead-letter file: {error}")
            return
        self.stats.quarantined += 1
        logger.error(
            "ledger row %s (request %s, cost $%.6f) rejected by the database, moved to %s: %s",
            row.id,
            row.request_id,
            row.cost_usd,
            self._dead_letter.path,
            exc,
        )

    def _mark_down(self, exc: BaseException) -> None:
        if self.stats.healthy:
            logger.warning("ledger database unavailable; spilling rows to disk: %s", exc)
        self.stats.healthy = False
        self._retry_at = self._clock() + self._settings.retry_seconds

    def _set_aside(self, rows: Sequence[LedgerRow]) -> None:
        """Rows the database cannot take now: to the spill files while under their cap, else
        back to the front of the memory queue while it has room (not at shutdown), else lost."""
        rest = rows[self._spill_rows(rows) :]
        if rest and not self._stopping:
            room = max(0, self._settings.queue_size - len(self._rows))
            self._rows.extendleft(reversed(rest[:room]))
            rest = rest[room:]
        if rest:
            self.stats.dropped += len(rest)
            where = "shutting down" if self._stopping else "the memory queue is full too"
            self._drops.dropped(
                rest,
                f"the database is unavailable, no room in the spill "
                f"files ({self._spill.directory}) and {where}",
            )

    def _spill_rows(self, rows: Sequence[LedgerRow]) -> int:
        try:
            spilled = self._spill.append(rows)
        except OSError:
            logger.exception("cannot write %d ledger row(s) to the spill file", len(rows))
            spilled = 0
        self._spill_refused = spilled < len(rows)
        self.stats.spilled += spilled
        self._replay_needed = self._replay_needed or spilled > 0
        self._spill_alarm.check()
        return spilled

    async def _replay(self) -> None:
        claimed = self._spill.claim_pending()
        self._replay_needed = False
        for index, file in enumerate(claimed):
            if not await self._replay_file(file):
                for rest in claimed[index + 1 :]:
                    rest.release()
                self._replay_needed = True
                return
        if claimed:
            logger.info("ledger: replayed %d spill file(s)", len(claimed))
            self._spill.rescan()
            self._spill_alarm.check()

    async def _replay_file(self, file: ClaimedFile) -> bool:
        for batch in file.batches(self._settings.batch_size):
            if not await self._insert(batch):
                file.release()
                return False
            self.stats.replayed += len(batch)
            if len(self._rows) >= self._settings.batch_size:
                await self._write(self._take())
        file.done()
        return True
