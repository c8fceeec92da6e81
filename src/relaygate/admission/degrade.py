"""Degradation levels per model: normal -> reduced -> degraded, with hysteresis.

Upstream calls are counted in one-second slots over a sliding window. Once a second the window's
p90 latency and error rate are compared with each level's thresholds: a level is entered as soon
as either signal reaches its thresholds, and left (one level at a time) only after it has held for
``min_hold_seconds`` and both signals have fallen below ``recover_factor`` times its thresholds,
so a model does not flap at the boundary. Each level carries configured actions (a cheaper
fallback model, stale cache answers, shedding low-priority keys).
"""

from __future__ import annotations

import bisect
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from relaygate.settings.limits import DegradeSettings, LevelActions, LevelThresholds

logger = logging.getLogger("relaygate.admission")

# Upper bounds (ms) of the latency histogram kept per one-second slot.
LATENCY_BOUNDS_MS = (
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_000, 3_000, 5_000, 8_000, 10_000, 15_000, 20_000,
    30_000, 60_000, 120_000,
)  # fmt: skip


class Level(enum.IntEnum):
    NORMAL = 0
    REDUCED = 1
    DEGRADED = 2


@dataclass(frozen=True, slots=True)
class Signals:
    """What the window saw: calls, their error rate and p90 latency (ms)."""

    calls: int
    error_rate: float
    p90_ms: float


LevelHook = Callable[[str, Level, Level, Signals], None]


class _Slot:
    __slots__ = ("calls", "errors", "histogram", "second")

    def __init__(self) -> None:
        self.second = -1
        self.calls = 0
        self.errors = 0
        self.histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)

    def reset(self, second: int) -> None:
        self.second = second
        self.calls = 0
        self.errors = 0
        self.histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)


class DegradeController:
    """One model's level, fed with every upstream call made for it."""

    def __init__(
        self,
        model: str,
        settings: DegradeSettings,
        clock: Callable[[], float] = time.monotonic,
        on_change: LevelHook | None = None,
    ) -> None:
        self.model = model
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self._slots = [_Slot() for _ in range(settings.window_seconds)]
        self.level = Level.NORMAL
        self._since = clock()
        self._evaluated = int(self._since)

    def record(self, seconds: float, error: bool) -> None:
        """Count one upstream call (an error is a 5xx, an overload answer or a timeout)."""
        now = self._clock()
        second = int(now)
        slot = self._slots[second % len(self._slots)]
        if slot.second != second:
            slot.reset(second)
        slot.calls += 1
        slot.errors += error
        slot.histogram[bisect.bisect_left(LATENCY_BOUNDS_MS, seconds * 1000.0)] += 1
        self._maybe_evaluate(now)

    def current(self) -> Level:
        """The level now (re-evaluated at most once per second)."""
        self._maybe_evaluate(self._clock())
        return self.level

    def actions(self) -> LevelActions | None:
        """The configured actions of the current level; None at normal."""
        level = self.current()
        if level is Level.NORMAL:
            return None
        s = self._settings
        return s.reduced_actions if level is Level.REDUCED else s.degraded_actions

    def signals(self) -> Signals:
        """The window's calls, error rate and p90 latency, as of now."""
        first = int(self._clock()) - len(self._slots) + 1
        calls = errors = 0
        histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        for slot in self._slots:
            if slot.second >= first:
                calls += slot.calls
                errors += slot.errors
                histogram = [a + b for a, b in zip(histogram, slot.histogram, strict=True)]
        return Signals(calls, errors / calls if calls else 0.0, _p90_ms(histogram, calls))

    def _maybe_evaluate(self, now: float) -> None:
        second = int(now)
        if second != self._evaluated:
            self._evaluated = second
            self._evaluate(now)

    def _evaluate(self, now: float) -> None:
        signals = self.signals()
        s = self._settings
        known = signals.calls >= s.min_samples
        reached = Level.NORMAL
        if known and _reaches(signals, s.degraded, 1.0):
            reached = Level.DEGRADED
        elif known and _reaches(signals, s.reduced, 1.0):
            reached = Level.REDUCED
        if reached > self.level:
            self._move(reached, now, signals)
        elif self.level > Level.NORMAL and now - self._since >= s.min_hold_seconds:
            held = s.degraded if self.level is Level.DEGRADED else s.reduced
            if not known or not _reaches(signals, held, s.recover_factor):
                self._move(Level(self.level - 1), now, signals)

    def _move(self, level: Level, now: float, signals: Signals) -> None:
        before, self.level, self._since = self.level, level, now
        logger.warning(
            "degradation level changed",
            extra={
                "fields": {
                    "model": self.model,
                    "from": before.name.lower(),
                    "to": level.name.lower(),
                    "calls": signals.calls,
                    "error_rate": round(signals.error_rate, 4),
                    "p90_ms": signals.p90_ms,
                }
            },
        )
        if self._on_change is not None:
            self._on_change(self.model, before, level, signals)


class DegradeLevels:
    """Every model's controller, made on first use; inert when degradation is disabled."""

    def __init__(
        self,
        settings: DegradeSettings,
        clock: Callable[[], float] = time.monotonic,
        on_change: LevelHook | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self._controllers: dict[str, DegradeController] = {}

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def levels(self) -> dict[str, Level]:
        """Each model's current level (models not seen yet are normal)."""
        return {model: c.current() for model, c in self._controllers.items()}

    def get(self, model: str) -> DegradeController:
        found = self._controllers.get(model)
        if found is None:
            found = DegradeController(model, self._settings, self._clock, self._on_change)
            self._controllers[model] = found
        return found


def _reaches(signals: Signals, thresholds: LevelThresholds, factor: float) -> bool:
    return (
        signals.p90_ms >= thresholds.latency_p90_ms * factor
        or signals.error_rate >= thresholds.error_rate * factor
    )


def _p90_ms(histogram: list[int], calls: int) -> float:
    if calls == 0:
        return 0.0
    wanted = 0.9 * calls
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= wanted:
            return float(LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)])
    return float(LATENCY_BOUNDS_MS[-1])
