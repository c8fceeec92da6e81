"""Loud logs for ledger rows at risk: spill files filling up, and rows the writer had to drop.

Both go out at error level (the metrics ``relaygate_ledger_spill_bytes`` / ``_spill_max_bytes``
and ``relaygate_ledger_dropped_rows_total`` say the same to a scraper). Drops are summed and logged
at most once per ``DROP_LOG_SECONDS``: the request path can drop one row at a time, and one log
line per request would bury everything else.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from relaygate.accounting.spill import SpillFile
from relaygate.store.ledger_records import LedgerRow

logger = logging.getLogger("relaygate.ledger")
SPILL_WARN_RATIO = 0.8
DROP_LOG_SECONDS = 1.0
MIB = 1024 * 1024


class SpillAlarm:
    """Logs once each time the spill files pass 80% of their cap, and once when they reach it."""

    def __init__(self, spill: SpillFile) -> None:
        self._spill = spill
        self._level = 0  # 0: fine, 1: past the warning ratio, 2: full

    def check(self) -> None:
        spill = self._spill
        used, cap = spill.bytes_used, spill.max_bytes
        level = 2 if spill.full else 1 if used >= cap * SPILL_WARN_RATIO else 0
        if level > self._level:
            what = "reached" if level == 2 else f"passed {SPILL_WARN_RATIO:.0%} of"
            logger.error(
                "ledger spill files in %s %s their cap: %d of %d bytes (%.1f MiB, "
                "accounting.ledger.spill_max_bytes). The database has refused ledger writes for "
                "a while; at the cap rows wait in memory (accounting.ledger.queue_size) and past "
                "that they are dropped",
                spill.directory,
                what,
                used,
                cap,
                cap / MIB,
            )
        elif level < self._level and level == 0:
            logger.warning("ledger spill files back under their cap: %d bytes", used)
        self._level = level


class DropAlarm:
    """Sums dropped rows (count and cost) into at most one error line per second."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rows = 0
        self._cost = 0.0
        self._reason = ""
        self._logged_at = -math.inf

    def dropped(self, rows: Sequence[LedgerRow], reason: str) -> None:
        self._rows += len(rows)
        self._cost += sum(row.cost_usd for row in rows)
        self._reason = reason
        if self._clock() - self._logged_at >= DROP_LOG_SECONDS:
            self.report()

    def report(self) -> None:
        """Log what was dropped since the last line, if anything."""
        if not self._rows:
            return
        logger.error(
            "ledger rows DROPPED: %d row(s) costing $%.6f are lost (%s)",
            self._rows,
            self._cost,
            self._reason,
        )
        self._rows, self._cost, self._logged_at = 0, 0.0, self._clock()
