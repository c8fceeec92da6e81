"""Surge-control settings: shared limits, the admission queue, adaptive concurrency, degradation.

Per-key limits live on the key (``rps``, ``burst``, ``rpm``, ``tpm``, ``max_concurrent``) and
per-deployment caps on the deployment (``rpm``, ``tpm``, ``max_concurrency``); this block holds
everything else. Everything here is off or generous by default, so an unconfigured gateway pays
nothing for admission.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QueueSettings(_Frozen):
    """Requests wait here while a deployment is momentarily at capacity.

    ``max_depth`` bounds the waiters of the whole process; ``max_wait_seconds`` is the longest any
    request waits (a request may ask for less with ``x-relaygate-max-wait-ms``), counted for a
    lower key from its arrival (the handler's start) to its admission or refusal, whatever
    reading, parsing and the loop's backlog took before it reached the queue (a protected key's
    budget, ``priority_reserve.max_wait_seconds``, counts from the queue: it is for its success).

    To answer refusals within a promised time (the flash-sale surge's 10 ms), set it below that
    time by what the gate's clock does not see: the loop's timers fire up to a millisecond late
    (uvloop's are in whole milliseconds; a lower key's wait already ends one smoothed loop lag
    early when ``overload`` is enabled, since its timer fires that late), and a refusal passes
    the protocol before the handler starts and its 429's write after the decision (in the
    surge bench at load 2 on 2 cores: timeouts decided 1.1 ms past their deadline at p50, 0.3 ms
    from the protocol to the handler and 0.1 ms to write at p50, ``bench/README.md``). A cap
    equal to the promise cannot keep it: its timeouts alone land at or past it. The surge bench
    uses 8 ms for its 10.
    """

    max_depth: int = Field(10_000, ge=0)
    max_wait_seconds: float = Field(1.0, ge=0)
    poll_seconds: float = Field(0.02, gt=0, description="re-check period for shared capacity")


class SharedLimitSettings(_Frozen):
    """How the Redis-backed limits behave (used only when ``redis_url`` is set).

    ``on_failure``: ``open`` keeps serving with this process's own limits while Redis is down;
    ``closed`` refuses requests that need shared limits until Redis answers again.
    """

    on_failure: Literal["open", "closed"] = "open"
    timeout_seconds: float = Field(0.25, gt=0)
    probe_seconds: float = Field(1.0, gt=0)
    lease_ttl_seconds: float = Field(15.0, gt=0)


class AdaptiveSettings(_Frozen):
    """Per-deployment concurrency limits that follow upstream latency (gradient, as in Netflix
    concurrency-limits' Gradient2). A deployment's ``max_concurrency`` caps ``max_limit``."""

    enabled: bool = False
    initial_limit: int = Field(50, ge=1)
    min_limit: int = Field(4, ge=1)
    max_limit: int = Field(1000, ge=1)
    tolerance: float = Field(1.5, ge=1.0, description="latency growth tolerated before shrinking")
    smoothing: float = Field(0.2, gt=0, le=1)
    backoff_ratio: float = Field(0.9, gt=0, lt=1, description="cut on an upstream overload signal")
    freeze_on_loop_lag_ms: float | None = Field(
        25.0,
        ge=0,
        description="no latency-driven shrinking while this process's loop lags this much",
    )

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveSettings:
        if not self.min_limit <= self.initial_limit <= self.max_limit:
            raise ValueError("expected min_limit <= initial_limit <= max_limit")
        return self


class LevelThresholds(_Frozen):
    """A level is entered when the window's p90 upstream latency or its error rate reaches these."""

    latency_p90_ms: float = Field(gt=0)
    error_rate: float = Field(gt=0, le=1)


class LevelActions(_Frozen):
    """What the gateway does while a model is at a level.

    ``fallback_models`` maps a model to a cheaper/faster one served instead; ``serve_stale`` lets
    the response cache answer from expired entries; keys below ``shed_below_priority`` are refused.
    """

    fallback_models: dict[str, str] = Field(default_factory=dict)
    serve_stale: bool = False
    shed_below_priority: int | None = None


class DegradeSettings(_Frozen):
    """Degradation levels (normal -> reduced -> degraded) per model, with hysteresis."""

    enabled: bool = False
    window_seconds: int = Field(10, ge=1, le=300)
    min_samples: int = Field(20, ge=1)
    reduced: LevelThresholds = LevelThresholds(latency_p90_ms=5_000, error_rate=0.10)
    degraded: LevelThresholds = LevelThresholds(latency_p90_ms=15_000, error_rate=0.30)
    recover_factor: float = Field(0.7, gt=0, lt=1)
    min_hold_seconds: float = Field(15.0, ge=0)
    reduced_actions: LevelActions = LevelActions()
    degraded_actions: LevelActions = LevelActions(shed_below_priority=1)

    @model_validator(mode="after")
    def _ordered(self) -> DegradeSettings:
        if self.degraded.latency_p90_ms < self.reduced.latency_p90_ms:
            raise ValueError("degraded.latency_p90_ms must be >= reduced.latency_p90_ms")
        if self.degraded.error_rate < self.reduced.error_rate:
            raise ValueError("degraded.error_rate must be >= reduced.error_rate")
        return self


class ShedStep(_Frozen):
    """Keys with a priority below ``below_priority`` are refused while the loop lag is at least
    ``lag_ms``, until it falls under ``lag_ms * recover_factor``."""

    below_priority: int
    lag_ms: float = Field(ge=0)


class OverloadSettings(_Frozen):
    """Load shedding driven by this process's own event-loop lag (its CPU saturation).

    A timer of ``tick_ms`` measures how late the loop runs it (one of five ticks while the lag is
    far below every level acted on); the lag is smoothed (EWMA weight ``smoothing`` a tick).
    While it is high, chat requests of low-priority keys are refused with a busy
    429 before their body is read; higher priorities are refused only at higher lag. The adaptive
    limits also stop shrinking on latency that is this process's own (``adaptive``).
    """

    enabled: bool = True
    tick_ms: float = Field(10.0, gt=0)
    smoothing: float = Field(0.25, gt=0, le=1)
    recover_factor: float = Field(0.5, ge=0, lt=1)
    retry_after_seconds: float = Field(1.0, gt=0)
    shed: list[ShedStep] = Field(
        default_factory=lambda: [
            ShedStep(below_priority=1, lag_ms=50.0),
            ShedStep(below_priority=10, lag_ms=200.0),
        ]
    )


class PriorityReserveSettings(_Frozen):
    """Deployment slots kept free for keys of ``min_priority`` or more while lower keys fill the
    rest, so that a surge of low-priority traffic cannot make high-priority requests wait for a
    slot. The share kept follows the protected keys' own recent concurrency (their peak in flight
    over the last ``window_seconds``, or what their arrival rate will need by Little's law when
    more, plus a margin, at most ``max_share`` of the deployment's limit): nothing is kept while
    no protected request came lately, so it costs nothing unused. While a reserve is kept, lower
    keys ramp up past their recent peak (at most the reserve, or half their level of one typical
    hold ago, more per hold; per ``window_seconds`` for longer holds), so a step up cannot fill
    the slots before the reserve has grown.

    ``max_wait_seconds`` is the longest a protected request waits in the admission queue, from
    when it reaches it (the queue's ``max_wait_seconds`` when unset, then also from the queue;
    ``x-relaygate-max-wait-ms`` may still ask for less).
    A protected request that finds every slot held waits for the next one freed in any worker,
    which lower keys leave to it: about one typical hold divided by the deployment's cap. A
    budget of several of those makes its refusal rare even when the queue's own is kept short
    so that lower keys are refused fast.
    """

    enabled: bool = True
    min_priority: int = 10
    max_share: float = Field(0.5, gt=0, lt=1)
    window_seconds: float = Field(1.0, gt=0)
    margin: int = Field(2, ge=0, description="slots kept beyond the protected keys' recent peak")
    max_wait_seconds: float | None = Field(None, ge=0)


class LimitSettings(_Frozen):
    """The ``limits:`` block of the config.

    ``global_max_concurrency`` caps requests in flight across the whole gateway (every process
    when Redis is shared). ``output_token_reserve`` is reserved against TPM when a request gives
    no ``max_tokens``; the reservation is trued up from the actual usage afterwards.
    """

    global_max_concurrency: int | None = Field(None, gt=0)
    output_token_reserve: int = Field(512, ge=0)
    queue: QueueSettings = QueueSettings()
    shared: SharedLimitSettings = SharedLimitSettings()
    adaptive: AdaptiveSettings = AdaptiveSettings()
    degrade: DegradeSettings = DegradeSettings()
    overload: OverloadSettings = OverloadSettings()
    priority_reserve: PriorityReserveSettings = PriorityReserveSettings()
