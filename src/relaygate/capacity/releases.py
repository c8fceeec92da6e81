"""When a deployment's slots held in this process will come back, for the admission queue.

A deployment's slots come back in waves (requests admitted together finish together), so an
average release rate says little about when the next slot frees: right after a wave the next one
is a whole upstream latency away. Instead each slot's hold is recorded when it is taken, and the
k-th slot to come back is expected at the k-th earliest start plus the typical hold time (an
average of recent holds) plus twice their deviation, as TCP bounds a round trip: a forecast that
is only right on average lets the waiters it puts just inside their budget time out half the
time. Only this process's slots are seen: with several workers sharing a limit, another
process's releases may serve a waiter sooner than forecast.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator

HOLD_SMOOTHING = 0.1  # weight of the newest hold in the typical hold time and its deviation
HOLD_SPREAD = 2.0  # deviations added to the typical hold in a forecast


class Hold:
    """One slot held since ``start``; ``ended`` once it came back."""

    __slots__ = ("ended", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.ended = False


class Releases:
    """One deployment's holds in this process, in the order they were taken."""

    __slots__ = ("_clock", "_holds", "_live", "deviation", "typical")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._holds: deque[Hold] = deque()
        self._live = 0
        self.typical: float | None = None
        self.deviation = 0.0

    @property
    def live(self) -> int:
        return self._live

    def start(self) -> Hold:
        hold = Hold(self._clock())
        self._holds.append(hold)
        self._live += 1
        return hold

    def end(self, hold: Hold) -> None:
        """The slot came back (once per hold); its duration feeds the typical hold time."""
        if hold.ended:
            return
        hold.ended = True
        self._live -= 1
        seconds = max(0.0, self._clock() - hold.start)
        typical = self.typical
        if typical is None:
            self.typical = seconds
        else:
            self.deviation += HOLD_SMOOTHING * (abs(seconds - typical) - self.deviation)
            self.typical = typical + HOLD_SMOOTHING * (seconds - typical)
        holds = self._holds
        while holds and holds[0].ended:
            holds.popleft()
        if len(holds) > 2 * self._live + 64:  # holds ended out of order pile up in the middle
            self._holds = deque(h for h in holds if not h.ended)

    def due(self, skip: int = 0) -> Iterator[float]:
        """By when each held slot is expected back, earliest first, past the first ``skip``
        (nothing while no hold ended)."""
        if self.typical is None:
            return iter(())
        hold = self.typical + HOLD_SPREAD * self.deviation
        live = (h.start + hold for h in self._holds if not h.ended)
        return itertools.islice(live, skip, None) if skip else live


def kth_release(due: Iterable[Iterator[float]], k: int, now: float) -> float | None:
    """Seconds until the ``k``-th of these expected releases (each sequence earliest first),
    0 when overdue, or None when there are fewer than ``k``."""
    if k < 1:
        return 0.0
    found = next(itertools.islice(heapq.merge(*due), k - 1, None), None)
    return None if found is None else max(0.0, found - now)
