"""The ledger writer: rows go to a bounded in-memory queue and one background task writes them.

``record`` never awaits and never raises: it appends to a deque (or, when the deque is full, to
the spill file). The writer task takes up to ``batch_size`` rows at a time, as soon as that many
wait or ``flush_interval_seconds`` after the last write, and inserts them in one statement. When
the database cannot take a batch, the batch goes to the spill file and the writer keeps spilling
until a retry (every ``retry_seconds``) succeeds; then the spill files are replayed. ``stop``
writes (or spills) everything still queued before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relaygate.accounting.spill import ClaimedFile, SpillFile
from relaygate.core.background import BackgroundTask
from relaygate.settings.accounting import LedgerSettings
from relaygate.store.errors import StoreError
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
        self._settings = settings
        self._clock = clock
        self._rows: deque[LedgerRow] = deque()
        self._ready = asyncio.Event()
        self._stopping = False
        self._loop = BackgroundTask("relaygate-ledger-writer", self._run)
        self._retry_at = 0.0
        self._replay_needed = True
        self.stats = LedgerStats()

    @property
    def queued(self) -> int:
        return len(self._rows)

    def record(self, row: LedgerRow) -> None:
        """Queue one row; never blocks, never raises. A full queue spills to disk instead."""
        self.stats.recorded += 1
        rows = self._rows
        if len(rows) >= self._settings.queue_size or self._stopping:
            self._spill_rows([row])
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
        await self._loop.join()
        await self._drain()
        self._spill.close()

    async def flush(self) -> None:
        """Write everything queued now (tests and the benchmark)."""
        while self._rows:
            await self._write(self._take())

    async def _run(self) -> None:
        while not self._stopping:
            if len(self._rows) < self._settings.batch_size:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.flush_interval_seconds):
                        await self._ready.wait()
            self._ready.clear()
            if self._stopping:
                break
            try:
                if self._rows:
                    await self._write(self._take())
                if self._replay_needed and (self.stats.healthy or self._clock() >= self._retry_at):
                    await self._replay()
            except Exception:
                # The writer must outlive any surprise, or rows would pile up unwritten.
                logger.exception("ledger writer iteration failed; continuing")

    async def _drain(self) -> None:
        while self._rows:
            batch = self._take()
            if not self.stats.healthy:
                self._spill_rows(batch)
                continue
            limit = min(self._settings.write_timeout_seconds, DRAIN_WRITE_TIMEOUT_SECONDS)
            await self._write(batch, limit)

    def _take(self) -> list[LedgerRow]:
        rows = self._rows
        count = min(len(rows), self._settings.batch_size)
        return [rows.popleft() for _ in range(count)]

    async def _write(self, batch: list[LedgerRow], limit: float | None = None) -> None:
        if not self.stats.healthy and self._clock() < self._retry_at:
            self._spill_rows(batch)
            return
        if not await self._insert(batch, limit):
            self._spill_rows(batch)

    async def _insert(self, batch: Sequence[LedgerRow], limit: float | None = None) -> bool:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit or self._settings.write_timeout_seconds):
                await self._store.insert_rows(batch)
        except (StoreError, TimeoutError) as exc:
            self._mark_down(exc)
            return False
        except Exception as exc:
            # A driver surprise must not cost the batch: it goes to disk like any failure.
            logger.exception("unexpected error writing %d ledger row(s)", len(batch))
            self._mark_down(exc)
            return False
        self.stats.written += len(batch)
        self.stats.batches += 1
        self.stats.write_seconds += time.perf_counter() - started
        if not self.stats.healthy:
            logger.warning("ledger database is back; replaying spilled rows")
            self.stats.healthy = True
            self._replay_needed = True
        return True

    def _mark_down(self, exc: BaseException) -> None:
        if self.stats.healthy:
            logger.warning("ledger database unavailable; spilling rows to disk: %s", exc)
        self.stats.healthy = False
        self._retry_at = self._clock() + self._settings.retry_seconds

    def _spill_rows(self, rows: Sequence[LedgerRow]) -> None:
        try:
            self._spill.append(rows)
        except OSError:
            logger.exception("cannot write %d ledger row(s) to the spill file", len(rows))
            return
        self.stats.spilled += len(rows)
        self._replay_needed = True

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
