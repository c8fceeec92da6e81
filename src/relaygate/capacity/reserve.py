"""Slots kept free for high-priority keys on a deployment filled by lower ones.

A priority queue alone does not protect high-priority requests in a surge: while every slot is
held by low-priority requests, a high-priority one waits for the next slot to come back, and a
deployment's slots come back in waves (requests admitted together finish together), so the wait
can be a whole upstream latency, longer than the queue's wait cap. Instead, requests below
``min_priority`` may fill the deployment only up to its limit minus a reserve, and protected
requests may take any free slot. The reserve follows the protected requests' own concurrency:
their peak in flight over the last window (scaled by the number of worker processes, since each
process sees its share), plus a margin, at most ``max_share`` of the limit; zero while none ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from relaygate.settings.limits import PriorityReserveSettings


class ProtectedDemand:
    """One deployment's requests in flight in this process, protected or not, and the recent
    peak of the protected ones (the current window's and the previous one's)."""

    __slots__ = ("_clock", "_peak", "_previous", "_started", "_window", "others", "protected")

    def __init__(self, window_seconds: float, clock: Callable[[], float]) -> None:
        self._window = window_seconds
        self._clock = clock
        self._started = clock()
        self._peak = 0
        self._previous = 0
        self.protected = 0
        self.others = 0

    def start(self, protected: bool) -> None:
        if protected:
            self.protected += 1
            self._roll()
            self._peak = max(self._peak, self.protected)
        else:
            self.others += 1

    def end(self, protected: bool) -> None:
        if protected:
            self.protected = max(0, self.protected - 1)
        else:
            self.others = max(0, self.others - 1)

    def recent_peak(self) -> int:
        """The most protected requests in flight at once over the last one to two windows."""
        self._roll()
        return max(self._peak, self._previous)

    def _roll(self) -> None:
        now = self._clock()
        elapsed = now - self._started
        if elapsed < self._window:
            return
        self._previous = self._peak if elapsed < 2 * self._window else 0
        self._peak = self.protected
        self._started = now


class PriorityReserve:
    """The reserve policy over every deployment of one process."""

    def __init__(
        self,
        settings: PriorityReserveSettings,
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._workers = max(1, workers)
        self._clock = clock
        self._demand: dict[str, ProtectedDemand] = {}

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def protects(self, priority: int) -> bool:
        return priority >= self._settings.min_priority

    def demand(self, deployment: str) -> ProtectedDemand:
        found = self._demand.get(deployment)
        if found is None:
            found = ProtectedDemand(self._settings.window_seconds, self._clock)
            self._demand[deployment] = found
        return found

    def kept(self, demand: ProtectedDemand, limit: int) -> int:
        """Slots of a deployment allowing ``limit`` in flight that unprotected requests leave."""
        peak = demand.recent_peak()
        if peak == 0:
            return 0
        wanted = peak * self._workers + self._settings.margin
        return min(wanted, int(limit * self._settings.max_share))
