"""Concurrency limits that follow upstream latency, per deployment, in this process.

A gradient limit in the manner of Envoy's adaptive concurrency and Netflix concurrency-limits:
the ratio of the no-load latency (the lowest window average of the last ``BASELINE_SECONDS``) to
the recent latency says whether requests are queueing, upstream or in this process. While the
latency stays within ``tolerance`` times the baseline and the limit is actually used, the limit
grows by about its square root per window; past that it shrinks in proportion; an overload answer
(429, 529, 503, timeout) cuts it by ``backoff_ratio``. A baseline taken as a windowed minimum
(not a slow average) does not drift up during a sustained surge, so the limit keeps protecting.
Samples are pooled into short windows (time-based, not count-based), so the controller behaves
the same at 50 and at 10,000 requests per second. Latency that is this process's own (its event
loop lagging ``freeze_on_loop_lag_ms`` or more during a window) does not shrink the limit: fewer
upstream slots would not make this process's CPU any faster, only starve the upstream. Like
Envoy's adaptive concurrency, each process adapts on its own: the limit protects what this process
sends.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from relaygate.settings.limits import AdaptiveSettings

WINDOW_SECONDS = 0.1
MIN_WINDOW_SAMPLES = 5
BASELINE_SECONDS = 30.0
LimitHook = Callable[[str, int], None]
LoopLag = Callable[[], float]


class GradientLimit:
    """One deployment's adaptive limit and the requests it currently lets through."""

    def __init__(
        self,
        name: str,
        settings: AdaptiveSettings,
        max_limit: int,
        clock: Callable[[], float] = time.monotonic,
        on_change: LimitHook | None = None,
        loop_lag: LoopLag | None = None,
    ) -> None:
        self.name = name
        self._settings = settings
        self._min = min(settings.min_limit, max_limit)
        self._max = max_limit
        self._limit = float(max(self._min, min(settings.initial_limit, max_limit)))
        self._clock = clock
        self._on_change = on_change
        self.in_flight = 0
        self._recent: deque[tuple[float, float]] = deque()  # (window end, average), min-queue
        self._window_start = clock()
        self._sum = 0.0
        self._count = 0
        self._drops = 0
        self._peak = 0
        freeze = settings.freeze_on_loop_lag_ms
        self._loop_lag = loop_lag if freeze is not None else None
        self._freeze_lag = (freeze or 0.0) / 1000.0
        self._lag_peak = 0.0

    @property
    def limit(self) -> int:
        """Requests this deployment may have in flight now."""
        return max(1, int(self._limit))

    @property
    def long_latency(self) -> float | None:
        """The no-load latency the controller compares against (seconds), once known."""
        return self._recent[0][1] if self._recent else None

    @property
    def full(self) -> bool:
        """No slot is free now."""
        return self.in_flight >= self.limit

    def try_acquire(self) -> bool:
        """Take a slot if one is free."""
        if self.full:
            return False
        self.in_flight += 1
        self._peak = max(self._peak, self.in_flight)
        return True

    def release(self) -> None:
        """Give a slot back."""
        if self.in_flight > 0:
            self.in_flight -= 1

    def sample(self, seconds: float, overloaded: bool) -> None:
        """Record one upstream call: its latency and whether it was an overload answer."""
        if overloaded:
            self._drops += 1
        else:
            self._sum += seconds
            self._count += 1
        if self._loop_lag is not None:
            self._lag_peak = max(self._lag_peak, self._loop_lag())
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed >= WINDOW_SECONDS and (
            self._count >= MIN_WINDOW_SAMPLES or self._drops or elapsed >= 10 * WINDOW_SECONDS
        ):
            self._close_window(now, elapsed)

    def _close_window(self, now: float, elapsed: float) -> None:
        before = self.limit
        if self._drops:
            self._limit = max(self._min, self._limit * self._settings.backoff_ratio)
        elif self._count:
            own = self._loop_lag is not None and self._lag_peak >= self._freeze_lag
            self._follow_latency(self._sum / self._count, now, own)
        self._window_start = now
        self._lag_peak = 0.0
        self._sum, self._count, self._drops = 0.0, 0, 0
        self._peak = self.in_flight
        if self._on_change is not None and self.limit != before:
            self._on_change(self.name, self.limit)

    def _follow_latency(self, short: float, now: float, own_lag: bool) -> None:
        recent = self._recent
        while recent and recent[-1][1] >= short:
            recent.pop()
        recent.append((now, short))
        while recent[0][0] < now - BASELINE_SECONDS:
            recent.popleft()
        if self._peak * 2 < self._limit:
            return  # the limit is not being used: the latency says nothing about it
        gradient = max(0.5, min(1.0, self._settings.tolerance * recent[0][1] / short))
        target = self._limit * gradient + math.sqrt(self._limit)
        smoothing = self._settings.smoothing
        limit = self._limit * (1.0 - smoothing) + target * smoothing
        if own_lag:
            limit = max(limit, self._limit)
        self._limit = max(float(self._min), min(float(self._max), limit))


class AdaptiveLimits:
    """The adaptive limit of every deployment, made on first use."""

    def __init__(
        self,
        settings: AdaptiveSettings,
        clock: Callable[[], float] = time.monotonic,
        on_change: LimitHook | None = None,
        loop_lag: LoopLag | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self._loop_lag = loop_lag
        self._limits: dict[str, GradientLimit] = {}

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def get(self, deployment: str, cap: int | None) -> GradientLimit:
        """The deployment's limit; ``cap`` (its configured max_concurrency) bounds it."""
        found = self._limits.get(deployment)
        if found is None:
            ceiling = min(self._settings.max_limit, cap) if cap else self._settings.max_limit
            found = GradientLimit(
                deployment, self._settings, ceiling, self._clock, self._on_change, self._loop_lag
            )
            self._limits[deployment] = found
            if self._on_change is not None:
                self._on_change(deployment, found.limit)
        return found

    def find(self, deployment: str) -> GradientLimit | None:
        """The deployment's limit if it has one already."""
        return self._limits.get(deployment)
