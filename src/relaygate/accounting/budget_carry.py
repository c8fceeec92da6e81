"""Budget settlements the database could not take before the process stopped, kept on disk.

The settler (budget.py) batches finished requests' spend per key in memory and retries while the
store is down. If the process stops before the store is back, the unwritten deltas are saved
here, one small JSON file per stopping process (``<home>/budget-unwritten.<pid>.<nonce>.json``,
written to a temporary name, fsynced and renamed, mode 0600), and the next process to start
claims every such file, counts its deltas as its own unwritten spend at once (so a key cannot
overspend while they wait) and writes them with its first successful flush, then deletes the file.

Why carry the deltas rather than derive the counters from the ledger: budget counters and ledger
rows are written independently (a row may spill while its settlement is written, or the other
way round), so re-deriving counters from replayed rows would count some spend twice; the
deltas are exactly what is missing.

Exactly once: a claimed file is locked (``flock``, like the ledger spill files) while its process
lives, so two starting processes never apply it both; it is deleted right after the transaction
that applied it commits. A crash in that instant applies it once more at the next start: that
errs toward refusing a request, never toward overspending. Month spend of a month that ended
before the file was claimed is dropped (it would count against the new month's cap); balance
spend and released reservations do not depend on the month and are kept.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import orjson

from relaygate.accounting.spill import ClaimedFile, try_lock
from relaygate.store.ledger_records import SpendDelta

logger = logging.getLogger("relaygate.budget")
BASE_NAME = "budget-unwritten"
# While the store stays down, its failure is logged at most this often.
OUTAGE_LOG_SECONDS = 60.0


class UnwrittenSpend:
    """The carry-over files of one gateway home."""

    def __init__(self, directory: Path, base_name: str = BASE_NAME) -> None:
        self.directory = directory
        self.base_name = base_name

    def save(self, month: str, deltas: Sequence[SpendDelta]) -> Path:
        """Write ``deltas`` (month spend of ``month``) to a new file, atomically."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{self.base_name}.{os.getpid()}.{secrets.token_hex(4)}"
        final, temporary = self.directory / f"{name}.json", self.directory / f"{name}.tmp"
        data = orjson.dumps(
            {
                "month": month,
                "deltas": [
                    [d.key_name, d.released_usd, d.spent_usd, d.balance_spent_usd] for d in deltas
                ],
            }
        )
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, final)
        return final

    def claim(self) -> list[ClaimedSpend]:
        """Every carry-over file no live process holds, locked by this one."""
        if not self.directory.exists():
            return []
        claimed = []
        for path in sorted(self.directory.glob(f"{self.base_name}.*.json")):
            handle = try_lock(path)
            if handle is None:
                continue
            try:
                raw = orjson.loads(handle.read())
                month = str(raw["month"])
                deltas = [
                    SpendDelta(str(k), float(r), float(s), float(b)) for k, r, s, b in raw["deltas"]
                ]
            except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
                # Written by rename, so never torn; kept for an operator rather than deleted.
                logger.error("unwritten budget spend in %s is unreadable; left in place", path)
                handle.close()
                continue
            claimed.append(ClaimedSpend(path, handle, month, deltas))
        return claimed


class ClaimedSpend(ClaimedFile):
    """One carry-over file, locked by this process until its deltas are written (``done``:
    in the database, or saved again in a newer file)."""

    def __init__(self, path: Path, handle: IO[bytes], month: str, deltas: list[SpendDelta]) -> None:
        super().__init__(path, handle)
        self.month = month
        self.deltas = deltas


class OutageLog:
    """Logs a store that keeps failing: the first failure, then at most once every
    ``OUTAGE_LOG_SECONDS``, and the recovery once."""

    def __init__(self, failing: str, recovered: str) -> None:
        self._failing_message = failing
        self._recovered_message = recovered
        self._failing = False
        self._logged_at = -OUTAGE_LOG_SECONDS

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if not self._failing or now - self._logged_at >= OUTAGE_LOG_SECONDS:
            logger.warning("%s: %s", self._failing_message, exc)
            self._logged_at = now
        self._failing = True

    def succeeded(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("%s", self._recovered_message)
