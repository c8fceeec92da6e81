"""Slots kept free for high-priority keys on a deployment filled by lower ones.

A priority queue alone does not protect high-priority requests in a surge: while every slot is
held by low-priority requests, a high-priority one waits for the next slot to come back, and a
deployment's slots come back in waves (requests admitted together finish together), so the wait
can be a whole upstream latency, longer than the queue's wait cap. Instead, requests below
``min_priority`` may fill the deployment only up to its limit minus a reserve, and protected
requests may take any free slot. The reserve follows the protected requests' own concurrency:
their peak in flight over the last window, or, when more, what their arrival rate will need by
Little's law (rate times the typical hold), both scaled by the number of worker processes since
each process sees its share; plus a margin, at most ``max_share`` of the limit; zero while none
came.

At a step up, lower keys take every open slot within milliseconds and hold them for a whole
upstream latency, so the reserve must have grown before the protected requests' new peak can
show, even before their own rate can (at 200/s, a few arrivals take 20-40 ms). The protected
arrival rate is therefore the larger of their own (over their last few arrivals) and their
recent share of all arrivals times the rate of all (over the last few dozen, a few milliseconds
into a surge): at a step the reserve assumes the mix holds, until the mix shows otherwise. Even
that takes a few milliseconds, in which lower keys would fill the open slots: so while a reserve
is kept they ramp up beyond their own peak of the last one to two windows, holding at most what
they held one typical hold ago (or one window, if shorter) plus their worker's share of the
reserve or half as much again, whichever is more (not in a deployment's first window in this
process: a ramp needs a history to ramp from).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from relaygate.settings.limits import PriorityReserveSettings

ARRIVAL_SAMPLES = 8  # protected arrivals their rate is measured over
MIX_SAMPLES = 32  # arrivals of any priority the rate of all is measured over (with one worker)
RAMP_GROWTH = 0.5  # share of what lower keys held one hold ago they may add (at least the reserve)


class ArrivalRate:
    """Arrivals per second over the last ``samples`` of them, falling while none come;
    arrivals older than ``horizon`` seconds are forgotten."""

    __slots__ = ("_arrivals", "_horizon", "_samples", "_weight")

    def __init__(self, samples: int, horizon: float) -> None:
        self._arrivals: deque[tuple[float, float]] = deque()
        self._samples = samples
        self._horizon = horizon
        self._weight = 0.0  # of the arrivals kept, kept as a sum: asked on every admission

    def add(self, now: float, weight: float) -> None:
        if len(self._arrivals) == self._samples:
            self._weight -= self._arrivals.popleft()[1]
        self._arrivals.append((now, weight))
        self._weight += weight

    def rate(self, now: float) -> float:
        arrivals = self._arrivals
        while arrivals and arrivals[0][0] < now - self._horizon:
            self._weight -= arrivals.popleft()[1]
        if len(arrivals) < 2:
            if not arrivals:
                self._weight = 0.0  # no rounding left over from fractional weights
            return 0.0
        first, weight = arrivals[0]
        span = now - first
        return (self._weight - weight) / span if span > 0 else 0.0


class ProtectedDemand:
    """One deployment's requests in flight in this process, protected or not, the recent peak
    of the protected ones (the current window's and the previous one's) and their arrival rate."""

    __slots__ = (
        "_all",
        "_born",
        "_clock",
        "_levels",
        "_mix",
        "_mix_previous",
        "_others_peak",
        "_others_previous",
        "_own",
        "_peak",
        "_previous",
        "_started",
        "_window",
        "others",
        "protected",
    )

    def __init__(self, window_seconds: float, clock: Callable[[], float], workers: int = 1) -> None:
        self._window = window_seconds
        self._clock = clock
        self._own = ArrivalRate(ARRIVAL_SAMPLES, 2 * window_seconds)
        # This process sees one in ``workers`` arrivals: the rate of all is measured over as
        # many milliseconds of a step as with one worker (a share of the samples).
        mix = max(ARRIVAL_SAMPLES, MIX_SAMPLES // max(1, workers))
        self._all = ArrivalRate(mix, 2 * window_seconds)
        self._mix = (0.0, 0.0)  # protected and all arrivals this window
        self._mix_previous = (0.0, 0.0)
        self._levels: deque[tuple[float, int]] = deque()  # (when, unprotected in flight since)
        self._started = self._born = clock()
        self._peak = 0
        self._previous = 0
        self._others_peak = 0
        self._others_previous = 0
        self.protected = 0
        self.others = 0

    def start(self, protected: bool) -> None:
        if protected:
            self.protected += 1
            self._roll()
            self._peak = max(self._peak, self.protected)
        else:
            self.others += 1
            self._roll()
            self._others_peak = max(self._others_peak, self.others)
            self._level_changed()

    def end(self, protected: bool) -> None:
        if protected:
            self.protected = max(0, self.protected - 1)
        else:
            self.others = max(0, self.others - 1)
            self._level_changed()

    def _level_changed(self) -> None:
        """Record the unprotected level; forget levels older than two windows (a typical hold
        is far shorter), which nothing may ask for while no reserve is kept."""
        now = self._clock()
        levels = self._levels
        levels.append((now, self.others))
        while len(levels) > 1 and levels[1][0] <= now - 2 * self._window:
            levels.popleft()

    @property
    def settled(self) -> bool:
        """Whether a whole window of this deployment's traffic has been seen."""
        return self._clock() - self._born >= self._window

    def others_recent_peak(self) -> int:
        """The most unprotected requests in flight at once over the last one to two windows."""
        self._roll()
        return max(self._others_peak, self._others_previous)

    def others_ago(self, seconds: float) -> int:
        """Unprotected requests this process had in flight ``seconds`` ago."""
        then = self._clock() - seconds
        levels = self._levels
        while len(levels) > 1 and levels[1][0] <= then:
            levels.popleft()
        return levels[0][1] if levels and levels[0][0] <= then else 0

    def arrive(self, protected: bool, weight: float = 1.0) -> None:
        """A request came for this deployment (``weight``: its share, when it may go to any of
        several)."""
        now = self._clock()
        if now - self._started >= self._window:  # as _roll would see it, without a second call
            self._roll()
        self._all.add(now, weight)
        mine, every = self._mix
        if protected:
            self._own.add(now, weight)
            mine += weight
        self._mix = (mine, every + weight)

    def arrival_rate(self) -> float:
        """Protected arrivals per second: their own rate over their last few, or their share of
        the last one to two windows' arrivals times the rate of all, whichever is more (nothing
        once none came for two windows, as the peak lapses)."""
        self._roll()
        now = self._clock()
        mine = self._mix[0] + self._mix_previous[0]
        every = self._mix[1] + self._mix_previous[1]
        share = mine / every if every > 0 else 0.0
        return max(self._own.rate(now), share * self._all.rate(now))

    def recent_peak(self) -> int:
        """The most protected requests in flight at once over the last one to two windows."""
        self._roll()
        return max(self._peak, self._previous)

    def _roll(self) -> None:
        now = self._clock()
        elapsed = now - self._started
        if elapsed < self._window:
            return
        recent = elapsed < 2 * self._window
        self._previous = self._peak if recent else 0
        self._others_previous = self._others_peak if recent else 0
        self._mix_previous = self._mix if recent else (0.0, 0.0)
        self._peak = self.protected
        self._others_peak = self.others
        self._mix = (0.0, 0.0)
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
        # The lowest priority protected (the settings' own, read per request: they are frozen).
        self.min_priority = settings.min_priority
        self._workers = max(1, workers)
        self._clock = clock
        self._demand: dict[str, ProtectedDemand] = {}

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    @property
    def workers(self) -> int:
        """Worker processes sharing the deployments' limits."""
        return self._workers

    def protects(self, priority: int) -> bool:
        return priority >= self.min_priority

    def demand(self, deployment: str) -> ProtectedDemand:
        found = self._demand.get(deployment)
        if found is None:
            found = ProtectedDemand(self._settings.window_seconds, self._clock, self._workers)
            self._demand[deployment] = found
        return found

    def kept(self, demand: ProtectedDemand, limit: int, hold: float | None = None) -> int:
        """Slots of a deployment allowing ``limit`` in flight that unprotected requests leave;
        ``hold``: how long a slot of it is typically held (seconds), once known."""
        needed = demand.recent_peak()
        if hold is not None:
            needed = max(needed, math.ceil(demand.arrival_rate() * hold - 1e-9))
        if needed == 0:
            return 0
        wanted = needed * self._workers + self._settings.margin
        return min(wanted, int(limit * self._settings.max_share))

    def binding_seconds(self, hold: float | None) -> float:
        """How long the open share a process asks for binds every process's asks: one typical
        hold, at most one window (0 while no hold is known, and with one process). Each process
        sizes the reserve from the arrivals it sees, and at a step up one sees it milliseconds
        before another; slots taken under the wider share are held a whole hold, so the
        narrower one must bind as long."""
        if hold is None or self._workers == 1:
            return 0.0
        return min(hold, self._settings.window_seconds)

    def open_to_others(self, demand: ProtectedDemand, limit: int, hold: float | None) -> int:
        """How many unprotected requests this process may have in flight on a deployment
        allowing ``limit``: what the reserve leaves, reached by a ramp while one is kept."""
        kept = self.kept(demand, limit, hold)
        if kept == 0 or hold is None or not demand.settled:
            return limit - kept
        # Per typical hold, or per window for long holds (LLM calls of tens of seconds): a ramp
        # that slow would leave the deployment idle while the reserve is long since in place.
        before = demand.others_ago(min(hold, self._settings.window_seconds))
        own_share = math.ceil(kept / self._workers)  # the reserve is kept across the workers
        ramp = before + max(own_share, math.ceil(before * RAMP_GROWTH))
        return min(limit - kept, max(ramp, demand.others_recent_peak()))
