"""The ledger's local spill files: JSON lines appended while the database cannot take them.

Each gateway process appends to a file of its own, ``<base>.<pid>.<nonce>``, and holds an
exclusive ``flock`` on it while it lives, so several processes sharing one home never write into,
or replay and delete, a file another live process still uses. A replay claims a file with a
non-blocking ``flock`` (the own live file is first moved aside so new spills start a fresh one),
inserts its rows in batches and deletes it only once every row is in the database. Files left by a
process that died are claimed and replayed by the next one. The database skips rows it already
has (inserts are idempotent by row id), so a replay interrupted half-way is simply done again.
A torn last line (a crash mid-write) is logged and skipped, never fatal.

All spill files of one home together stay under ``max_bytes`` (``ledger.spill_max_bytes``): an
append writes the rows that fit and reports how many; the writer decides what happens to the rest
(see ``LedgerWriter``). The total is re-read from the directory at most every ``RESCAN_SECONDS``
while appending, and after every replay, so other processes' files count too.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import orjson

from relaygate.store.ledger_records import LedgerRow

logger = logging.getLogger("relaygate.ledger")
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
RESCAN_SECONDS = 1.0


class SpillFile:
    """This process's spill file plus the claiming of pending ones. Used from the event loop."""

    def __init__(self, directory: Path, base_name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self.base_name = base_name
        self.max_bytes = max_bytes
        self._live = directory / f"{base_name}.{os.getpid()}.{secrets.token_hex(4)}"
        self._handle: IO[bytes] | None = None
        self._bytes = 0
        self._scanned_at = -RESCAN_SECONDS
        self.full = False  # the last append left rows out; cleared once there is room again

    @property
    def live_path(self) -> Path:
        return self._live

    @property
    def bytes_used(self) -> int:
        """Every spill file of this home together, as last counted."""
        return self._bytes

    def append(self, rows: Sequence[LedgerRow]) -> int:
        """Append the leading rows that fit under ``max_bytes`` and hand them to the OS (flushed:
        a crash of this process keeps them). Returns how many were written."""
        if not rows:
            return 0
        lines = [orjson.dumps(r.to_json()) + b"\n" for r in rows]
        if time.monotonic() - self._scanned_at >= RESCAN_SECONDS:
            self.rescan()
        fitting = self._fitting(lines)
        if fitting < len(lines):
            self.rescan()  # replays elsewhere may have made room since the last count
            fitting = self._fitting(lines)
        self.full = fitting < len(lines)
        if fitting:
            data = b"".join(lines[:fitting])
            handle = self._open()
            handle.write(data)
            handle.flush()
            self._bytes += len(data)
        return fitting

    def rescan(self) -> None:
        """Count the spill files on disk again."""
        self._scanned_at = time.monotonic()
        total = 0
        for path in self._all():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        self._bytes = total
        if total < self.max_bytes:
            self.full = False

    def _fitting(self, lines: Sequence[bytes]) -> int:
        room = self.max_bytes - self._bytes
        for count, line in enumerate(lines):
            room -= len(line)
            if room < 0:
                return count
        return len(lines)

    def close(self) -> None:
        """fsync and close the live file (at shutdown: even a power cut keeps what was spilled)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()

    def claim_pending(self) -> list[ClaimedFile]:
        """Every pending file not held by a live process, locked for replay (own file included)."""
        if self._handle is not None:
            self.close()  # releases our lock; the file is claimed again just below
        claimed: list[ClaimedFile] = []
        for path in sorted(self.directory.glob(f"{self.base_name}.*")):
            handle = try_lock(path)
            if handle is not None:
                claimed.append(ClaimedFile(path, handle))
        return claimed

    def _all(self) -> Iterator[Path]:
        if not self.directory.exists():
            return iter(())
        return self.directory.glob(f"{self.base_name}.*")

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._handle = self._open_locked()
        return self._handle

    def _open_locked(self) -> IO[bytes]:
        # Between creating the file and locking it, another process may claim it (empty), replay
        # it and delete it; rows written to the unlinked file would be lost, so start over.
        while True:
            self._live = self.directory / f"{self.base_name}.{os.getpid()}.{secrets.token_hex(4)}"
            handle = self._live.open("ab")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                if os.path.samestat(os.fstat(handle.fileno()), os.stat(self._live)):
                    return handle
            except FileNotFoundError:
                pass
            handle.close()


class ClaimedFile:
    """A spill file locked by this process for replay."""

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path = path
        self._handle = handle

    def batches(self, batch_size: int) -> Iterator[list[LedgerRow]]:
        """The file's rows in batches; unreadable lines are logged and skipped."""
        batch: list[LedgerRow] = []
        self._handle.seek(0)
        for number, line in enumerate(self._handle, start=1):
            if not line.strip():
                continue
            try:
                batch.append(LedgerRow.from_json(orjson.loads(line)))
            except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
                logger.error("ledger spill %s line %d is unreadable; skipped", self.path, number)
                continue
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def done(self) -> None:
        """Every row is in the database: delete the file, then let go of it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        """Keep the file for a later replay and let go of it."""
        self._handle.close()


def try_lock(path: Path) -> IO[bytes] | None:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    if not path.exists():  # replayed and deleted by another process while we waited
        handle.close()
        return None
    return handle
