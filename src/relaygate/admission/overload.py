"""Overload shedding driven by this process's own event-loop lag.

When the gateway's CPU is the bottleneck, every request (refused ones too) waits its turn on the
event loop, so a refusal decided after reading and decoding the body arrives as late as an
answer. The loop lag measures that saturation directly: a timer of ``tick_ms`` is run late by
however long the loop was busy. While the smoothed lag is high, ``should_shed`` tells the chat
handler to refuse low-priority keys before it reads the body; each shed step has hysteresis (it
engages at ``lag_ms`` and releases below ``lag_ms * recover_factor``), and higher priorities are
shed only at higher lag. The decision is recomputed once per tick, so a request pays one
comparison.

A calm loop is measured every ``CALM_TICKS`` ticks instead of every tick: how late a timer runs
is how long the loop's current pass takes, whatever the timer's period, so the longer sleep
measures the same lag with a fifth of the loop's wake-ups (at a 10 ms tick, 100 a second were a
fixed cost of an idle or lightly loaded process). Its sample counts as the ticks it stands for,
all on time but the last: the average decays over all of them and the lag joins it as one late
tick, so a stall (a descheduled process) weighs what it did at one tick a period, not five times
more. A steady lag, late on every tick, calm samples read low (a third of it at the default
smoothing): the monitor ticks every tick again once their reading reaches what a steady lag of
``CALM_MARGIN`` of the lowest level anything acts on (a shed step, the adaptive limits' freeze)
reads, so a steady lag is followed tick by tick before it reaches any level, at most one calm
tick (50 ms by default) later than with fixed ticks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from relaygate.core.background import BackgroundTask
from relaygate.settings.limits import OverloadSettings

SHED_REASON = "loop_lag"
Sleep = Callable[[float], Awaitable[None]]
ShedHook = Callable[[str], None]
CALM_TICKS = 5
CALM_MARGIN = 0.75


class LagMonitor:
    """The smoothed event-loop lag of this process and the shedding it implies."""

    def __init__(
        self,
        settings: OverloadSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_shed: ShedHook | None = None,
        watch_lag_ms: float | None = None,
    ) -> None:
        """``watch_lag_ms``: a lag some other reader acts on (the adaptive limits' freeze); the
        monitor ticks fast before the lag reaches it too."""
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._on_shed = on_shed
        self._tick = settings.tick_ms / 1000.0
        self._steps = tuple(
            (step.below_priority, step.lag_ms / 1000.0)
            for step in sorted(settings.shed, key=lambda s: s.lag_ms)
            if settings.enabled
        )
        self._engaged = [False] * len(self._steps)
        levels = [threshold for _, threshold in self._steps]
        if watch_lag_ms is not None:
            levels.append(watch_lag_ms / 1000.0)
        # What calm samples make of a steady lag (they count the ticks between as on time).
        weight = settings.smoothing
        steady = weight / (1.0 - (1.0 - weight) ** CALM_TICKS)
        self._calm_below = CALM_MARGIN * steady * min(levels, default=0.0)
        self._loop = BackgroundTask("relaygate-loop-lag", self._run)
        self.lag = 0.0
        self.shed_below: int | None = None
        self.record(0.0)

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    @property
    def shedding(self) -> bool:
        """Whether any priority is being shed now (the handler's one check when not)."""
        return self.shed_below is not None

    def start(self) -> None:
        """Start the ticking task (inside the running loop); no-op when disabled."""
        if self._settings.enabled:
            self._loop.start()

    async def stop(self) -> None:
        """Stop the ticking task and wait for it; safe to call twice."""
        await self._loop.cancel()

    def record(self, lag_seconds: float, ticks: int = 1) -> None:
        """Fold one measured lag, taken over ``ticks`` ticks (on time but the last), into the
        average and re-decide which priorities are shed."""
        weight = self._settings.smoothing
        keep = 1.0 - weight
        if ticks != 1:
            keep **= ticks
        self.lag = lag = self.lag * keep + lag_seconds * weight
        recover = self._settings.recover_factor
        below: int | None = None
        for i, (priority, threshold) in enumerate(self._steps):
            engaged = self._engaged[i]
            if engaged and lag < threshold * recover:
                engaged = False
            elif not engaged and lag >= threshold:
                engaged = True
            self._engaged[i] = engaged
            if engaged and (below is None or priority > below):
                below = priority
        self.shed_below = below

    def should_shed(self, priority: int) -> float | None:
        """Retry-After seconds if a key of ``priority`` is to be refused now, else None."""
        below = self.shed_below
        if below is None or priority >= below:
            return None
        if self._on_shed is not None:
            self._on_shed(SHED_REASON)
        return self._settings.retry_after_seconds

    @property
    def calm(self) -> bool:
        """Whether the lag is far enough below every level acted on to tick slowly."""
        return self.lag < self._calm_below and self.shed_below is None

    async def _run(self) -> None:
        tick, clock = self._tick, self._clock
        while True:
            ticks = CALM_TICKS if self.calm else 1
            period = tick * ticks
            started = clock()
            await self._sleep(period)
            self.record(max(0.0, clock() - started - period), ticks)
