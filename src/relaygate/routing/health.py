"""What the gateway knows about each deployment's health: breaker, requests in flight, latency.

State lives in this process's memory only. With several gateway processes (``server.workers`` or
several machines) each keeps its own view: a failing deployment is opened by each process after
that process saw the threshold, each lets its own probe through after the cooldown (so up to one
probe per process per cooldown), and least-outstanding and lowest-latency balance on the requests
and latencies that process saw. That is the usual trade-off (Envoy's outlier detection works the
same way per proxy): no shared store on the request path, at the price of a failing deployment
receiving a few more requests before every process has opened its breaker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from relaygate.routing.breaker import Admission, BreakerState, CircuitBreaker, Clock
from relaygate.settings.routing import BreakerSettings

logger = logging.getLogger("relaygate.routing")

EWMA_ALPHA = 0.3
"""Weight of the newest latency sample: about the last half-dozen attempts dominate."""
LATENCY_STALE_SECONDS = 30.0
"""A latency older than this is forgotten, so a deployment that recovered is measured again."""
PANIC_LOG_SECONDS = 10.0
"""Healthy panic is logged at most this often per model (with the count of requests since)."""

StateHook = Callable[[str, BreakerState | None, BreakerState], None]
"""Told ``(deployment, old state, new state)``; ``old`` is None when a deployment is first seen."""
PanicHook = Callable[[str], None]
"""Told the requested model's name each time a request is routed in healthy panic."""


class DeploymentHealth:
    """One deployment's breaker, requests in flight, latency EWMA and rate-limit hold.

    A 429 is no verdict on health: it never counts against the breaker. It holds the deployment
    back for its ``Retry-After`` (at most the breaker's cooldown), never longer.
    """

    __slots__ = ("_held_until", "_latency", "_sampled_at", "breaker", "outstanding")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.outstanding = 0
        self._latency: float | None = None
        self._sampled_at = 0.0
        self._held_until = 0.0

    def hold(self, retry_after: float, now: float) -> None:
        until = now + min(retry_after, self.breaker.cooldown_seconds)
        self._held_until = max(self._held_until, until)

    def held_for(self, now: float) -> float:
        """Seconds the upstream's latest ``Retry-After`` still asks to wait (0 when none)."""
        return max(0.0, self._held_until - now)

    def latency(self, now: float) -> float | None:
        """The EWMA in seconds, or ``None`` when there is no recent sample."""
        if self._latency is None or now - self._sampled_at > LATENCY_STALE_SECONDS:
            return None
        return self._latency

    def observe_latency(self, seconds: float, now: float) -> None:
        previous = self.latency(now)
        if previous is None:
            self._latency = seconds
        else:
            self._latency = previous + EWMA_ALPHA * (seconds - previous)
        self._sampled_at = now


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """A deployment's health at one moment, for metrics and the admin view."""

    deployment: str
    state: BreakerState
    outstanding: int
    latency: float | None


class Lease:
    """One admitted attempt: holds a slot in ``outstanding`` until closed, reports its outcome.

    The breaker hears at most one verdict per lease (``succeeded``, ``failed`` or ``released``),
    except ``broke_later``: a stream that opened fine and failed mid-way counts as a failure too.
    """

    __slots__ = ("_admission", "_board", "_closed", "_health", "_judged", "_on_close")

    def __init__(self, board: HealthBoard, health: DeploymentHealth, admission: Admission) -> None:
        self._board = board
        self._health = health
        self._admission = admission
        self._judged = False
        self._closed = False
        self._on_close: Callable[[], None] | None = None
        health.outstanding += 1

    @property
    def is_probe(self) -> bool:
        return self._admission is Admission.PROBE

    def succeeded(self, seconds: float) -> None:
        """The deployment answered; ``seconds`` is the attempt's latency."""
        self._health.observe_latency(seconds, self._board.clock())
        if not self._judged:
            self._judged = True
            self._health.breaker.success(self._admission)

    def failed(self, seconds: float, timed_out: bool = False) -> None:
        """The deployment failed; a timeout also pushes its latency up."""
        if timed_out:
            self._health.observe_latency(seconds, self._board.clock())
        if not self._judged:
            self._judged = True
            self._health.breaker.failure(self._admission)

    def rate_limited(self, retry_after: float | None) -> None:
        """The deployment refused for rate limiting: held back for ``retry_after``, no verdict."""
        if retry_after is not None and retry_after > 0:
            self._health.hold(retry_after, self._board.clock())
        self.released()

    def released(self) -> None:
        """The attempt ended without saying anything about the deployment."""
        if not self._judged:
            self._judged = True
            self._health.breaker.release(self._admission)

    def broke_later(self) -> None:
        """An attempt already judged a success failed afterwards (a stream cut mid-way)."""
        self._health.breaker.failure(Admission.NORMAL)

    def then(self, on_close: Callable[[], None]) -> None:
        """Run ``on_close`` once, when the lease is closed (frees what the attempt held)."""
        self._on_close = on_close

    def close(self) -> None:
        """The attempt no longer occupies the deployment (idempotent)."""
        if not self._closed:
            self._closed = True
            self._health.outstanding -= 1
            if not self._judged:
                self.released()
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


class HealthBoard:
    """Every deployment's health in this process, created on first use."""

    def __init__(
        self,
        on_change: StateHook | None = None,
        clock: Clock = time.monotonic,
        *,
        on_panic: PanicHook | None = None,
    ) -> None:
        self.clock = clock
        self._on_change = on_change
        self._on_panic = on_panic
        self._health: dict[str, DeploymentHealth] = {}
        self._panic_logged_at: dict[str, float] = {}
        self._panics_unlogged: dict[str, int] = {}

    def register(self, deployment: str, settings: BreakerSettings) -> DeploymentHealth:
        """The deployment's health, made with ``settings`` the first time it is asked for."""
        health = self._health.get(deployment)
        if health is None:
            breaker = CircuitBreaker(deployment, settings, self.clock, self._transition)
            health = self._health[deployment] = DeploymentHealth(breaker)
            if self._on_change is not None:
                self._on_change(deployment, None, BreakerState.CLOSED)
        return health

    def admit(
        self, deployment: str, settings: BreakerSettings, *, panic: bool = False
    ) -> Lease | None:
        """A lease for an attempt on ``deployment``, or ``None`` while its breaker refuses.

        With ``panic`` a refusing breaker is overridden (see ``panicked``).
        """
        health = self.register(deployment, settings)
        admission = health.breaker.admit()
        if admission is Admission.REFUSED:
            if not panic:
                return None
            admission = Admission.PANIC
        return Lease(self, health, admission)

    def panicked(self, model: str) -> None:
        """A request for ``model`` found every deployment of its plan refused by a breaker and
        goes through anyway (healthy panic, as Envoy's panic threshold): breakers must never
        turn a partial failure into a full outage."""
        if self._on_panic is not None:
            self._on_panic(model)
        now = self.clock()
        count = self._panics_unlogged.get(model, 0) + 1
        last = self._panic_logged_at.get(model)
        if last is not None and now - last < PANIC_LOG_SECONDS:
            self._panics_unlogged[model] = count
            return
        self._panic_logged_at[model] = now
        self._panics_unlogged[model] = 0
        fields = {"model": model, "requests": count}
        logger.warning(
            "healthy panic: every circuit breaker of the model and its fallbacks is open; "
            "sending the request anyway",
            extra={"fields": fields},
        )

    def get(self, deployment: str) -> DeploymentHealth | None:
        return self._health.get(deployment)

    def snapshot(self) -> Iterator[HealthSnapshot]:
        now = self.clock()
        for name, health in self._health.items():
            yield HealthSnapshot(
                name, health.breaker.state, health.outstanding, health.latency(now)
            )

    def _transition(self, deployment: str, old: BreakerState, new: BreakerState) -> None:
        fields = {"deployment": deployment, "from": old.name.lower(), "to": new.name.lower()}
        level = logging.WARNING if new is BreakerState.OPEN else logging.INFO
        logger.log(level, "circuit breaker state changed", extra={"fields": fields})
        if self._on_change is not None:
            self._on_change(deployment, old, new)
