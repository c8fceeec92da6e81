"""A circuit breaker for one deployment: closed -> open -> half-open (one probe) -> closed.

Closed, it lets everything through and counts outcomes: ``consecutive_failures`` failures in a row,
or an error rate of at least ``error_rate`` over the last ``window_seconds`` once ``min_requests``
attempts fell in that window, open it. Open, it refuses everything until ``cooldown_seconds`` have
passed; then it turns half-open and lets exactly one probe through. The probe's success closes
it (with fresh counts), its failure opens it for another cooldown. Outcomes of attempts that were
let through before the breaker opened are ignored once it is open or half-open: only the probe
decides. The clock is injected, so every transition can be tested without waiting.

Healthy panic: when every deployment a request could use is refused, the attempt loop sends it
anyway with a ``PANIC`` admission. Its success closes the breaker (the deployment answered); its
failure changes nothing (the breaker already knows).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from relaygate.settings.routing import BreakerSettings

Clock = Callable[[], float]
TransitionHook = Callable[[str, "BreakerState", "BreakerState"], None]

_WINDOW_SLOTS = 10


class BreakerState(enum.Enum):
    """The three states; ``value`` is what the metrics gauge reports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Admission(enum.Enum):
    """What ``CircuitBreaker.admit`` decided for one attempt."""

    REFUSED = 0
    NORMAL = 1
    PROBE = 2
    PANIC = 3


class FailureWindow:
    """Attempts and failures over a sliding time window, kept in ``_WINDOW_SLOTS`` buckets."""

    __slots__ = ("_epochs", "_failures", "_totals", "_width")

    def __init__(self, seconds: float) -> None:
        self._width = seconds / _WINDOW_SLOTS
        self._epochs = [-1] * _WINDOW_SLOTS
        self._totals = [0] * _WINDOW_SLOTS
        self._failures = [0] * _WINDOW_SLOTS

    def add(self, now: float, failed: bool) -> None:
        epoch = int(now / self._width)
        slot = epoch % _WINDOW_SLOTS
        if self._epochs[slot] != epoch:
            self._epochs[slot] = epoch
            self._totals[slot] = 0
            self._failures[slot] = 0
        self._totals[slot] += 1
        if failed:
            self._failures[slot] += 1

    def counts(self, now: float) -> tuple[int, int]:
        """``(attempts, failures)`` in the window ending at ``now``."""
        oldest = int(now / self._width) - _WINDOW_SLOTS + 1
        total = failures = 0
        for slot in range(_WINDOW_SLOTS):
            if self._epochs[slot] >= oldest:
                total += self._totals[slot]
                failures += self._failures[slot]
        return total, failures

    def clear(self) -> None:
        self._epochs = [-1] * _WINDOW_SLOTS


class CircuitBreaker:
    """One deployment's breaker. Not thread-safe: it lives on one event loop."""

    __slots__ = (
        "_clock",
        "_consecutive",
        "_on_change",
        "_opened_at",
        "_probe_out",
        "_settings",
        "_window",
        "name",
        "state",
    )

    def __init__(
        self,
        name: str,
        settings: BreakerSettings,
        clock: Clock,
        on_change: TransitionHook | None = None,
    ) -> None:
        self.name = name
        self.state = BreakerState.CLOSED
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self._window = FailureWindow(settings.window_seconds)
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_out = False

    def admit(self) -> Admission:
        """May an attempt go to this deployment now? Half-open admits a single probe."""
        state = self.state
        if state is BreakerState.CLOSED or not self._settings.enabled:
            return Admission.NORMAL
        if state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self._settings.cooldown_seconds:
                return Admission.REFUSED
            self._move(BreakerState.HALF_OPEN)
        if self._probe_out:
            return Admission.REFUSED
        self._probe_out = True
        return Admission.PROBE

    @property
    def cooldown_seconds(self) -> float:
        return self._settings.cooldown_seconds

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        left = self._opened_at + self._settings.cooldown_seconds - self._clock()
        return max(0.0, left)

    def success(self, admission: Admission) -> None:
        """An admitted attempt succeeded."""
        if admission is Admission.PROBE:
            self._probe_out = False
            if self.state is BreakerState.HALF_OPEN:
                self._close()
            return
        if admission is Admission.PANIC and self.state is not BreakerState.CLOSED:
            self._close()
            return
        if self.state is BreakerState.CLOSED:
            self._consecutive = 0
            self._window.add(self._clock(), failed=False)

    def failure(self, admission: Admission) -> None:
        """An admitted attempt failed in a way that is the deployment's fault."""
        if admission is Admission.PROBE:
            self._probe_out = False
            if self.state is BreakerState.HALF_OPEN:
                self._open()
            return
        if self.state is not BreakerState.CLOSED or not self._settings.enabled:
            return
        now = self._clock()
        self._consecutive += 1
        self._window.add(now, failed=True)
        if self._consecutive >= self._settings.consecutive_failures or self._rate_exceeded(now):
            self._open()

    def release(self, admission: Admission) -> None:
        """An admitted attempt ended without a verdict (a caller error, a cancellation)."""
        if admission is Admission.PROBE:
            self._probe_out = False

    def _rate_exceeded(self, now: float) -> bool:
        total, failures = self._window.counts(now)
        settings = self._settings
        return total >= settings.min_requests and failures >= settings.error_rate * total

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _close(self) -> None:
        self._consecutive = 0
        self._window.clear()
        self._move(BreakerState.CLOSED)

    def _move(self, state: BreakerState) -> None:
        old, self.state = self.state, state
        if old is not state and self._on_change is not None:
            self._on_change(self.name, old, state)
