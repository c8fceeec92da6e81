"""The ledger's dead-letter file: rows the database rejects for their values, kept for a person.

A row the database refuses (a value out of range, text it cannot store, a violated constraint)
fails every retry, and left in its batch it would block every row beside it. The writer isolates
it (``LedgerWriter`` splits the batch) and appends it here, one JSON line per row:
``{"quarantined_at": ..., "error": ..., "row": {...}}`` with the row as the spill file holds it.
Every process of one home appends to the same file under an exclusive ``flock``. A row can appear
twice if the database went away while its batch was being split (the row ``id`` tells); nothing
here is replayed automatically: fix the row (or the schema) and insert it by hand.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

from relaygate.store.ledger_records import LedgerRow


class DeadLetterFile:
    """Appends quarantined rows; used from the event loop, rarely."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / name

    def append(self, rows: Sequence[LedgerRow], error: str) -> None:
        """Append and fsync (a quarantined row exists nowhere else). Raises OSError."""
        moment = datetime.now(UTC).isoformat()
        data = b"".join(
            orjson.dumps({"quarantined_at": moment, "error": error, "row": row.to_json()}) + b"\n"
            for row in rows
        )
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
