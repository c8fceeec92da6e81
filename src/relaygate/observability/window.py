"""``RequestWindow``: the last few minutes of finished requests, for in-process alert rules.

Requests are counted in one-second slots of a ring (count, 5xx answers and a latency histogram
per slot), so recording one is O(1) and nothing grows with traffic; a reader adds up the slots
of the seconds it asks about. The histogram's bounds grow by 25% a step from 1 ms, so a p99 read
from it is at most 25% above the true value.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

_STEPS = 60
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(1.25**i for i in range(_STEPS))  # 1 ms .. ~530 s


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What the window saw over some seconds: requests, 5xx answers, and the p99 latency (ms,
    the upper bound of its histogram bucket; 0 without requests)."""

    requests: int
    errors: int
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class _Slot:
    __slots__ = ("errors", "histogram", "requests", "second")

    def __init__(self) -> None:
        self.second = -1
        self.requests = 0
        self.errors = 0
        self.histogram = [0] * (_STEPS + 1)


class RequestWindow:
    """Finished requests of the last ``seconds`` seconds, in one-second slots.

    Running totals over the whole ring are kept too (a slot's counts are subtracted when it is
    reused or found stale), so reading the full window costs one histogram, not one per second.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = max(1, math.ceil(seconds))
        self._clock = clock
        self._slots = [_Slot() for _ in range(self.seconds)]
        self._requests = 0
        self._errors = 0
        self._histogram = [0] * (_STEPS + 1)

    def record(self, latency_seconds: float, status: int) -> None:
        second = int(self._clock())
        slot = self._slots[second % self.seconds]
        if slot.second != second:
            self._evict(slot)
            slot.second = second
        slot.requests += 1
        self._requests += 1
        if status >= 500:
            slot.errors += 1
            self._errors += 1
        index = bisect.bisect_left(LATENCY_BOUNDS_MS, latency_seconds * 1000.0)
        slot.histogram[index] += 1
        self._histogram[index] += 1

    def stats(self, seconds: float) -> WindowStats:
        """Totals over the last ``seconds`` (at most the window's length), this second included."""
        now = int(self._clock())
        first_kept = now - self.seconds + 1
        for slot in self._slots:
            if slot.requests and slot.second < first_kept:
                self._evict(slot)
        span = min(self.seconds, max(1, math.ceil(seconds)))
        if span == self.seconds:
            return WindowStats(
                self._requests, self._errors, _quantile_ms(self._histogram, self._requests, 0.99)
            )
        oldest = now - span + 1
        requests = errors = 0
        histogram = [0] * (_STEPS + 1)
        for slot in self._slots:
            if slot.requests and oldest <= slot.second <= now:
                requests += slot.requests
                errors += slot.errors
                for index, count in enumerate(slot.histogram):
                    if count:
                        histogram[index] += count
        return WindowStats(requests, errors, _quantile_ms(histogram, requests, 0.99))

    def _evict(self, slot: _Slot) -> None:
        if not slot.requests:
            return
        self._requests -= slot.requests
        self._errors -= slot.errors
        for index, count in enumerate(slot.histogram):
            if count:
                self._histogram[index] -= count
        slot.requests = slot.errors = 0
        slot.histogram = [0] * (_STEPS + 1)


def _quantile_ms(histogram: list[int], total: int, quantile: float) -> float:
    if total == 0:
        return 0.0
    wanted = quantile * total
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= wanted:
            return LATENCY_BOUNDS_MS[index] if index < _STEPS else math.inf
    return math.inf
