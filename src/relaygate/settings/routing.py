"""Reliability settings: how a model routes, retries and bounds a request; when a deployment trips.

``routing`` sits on a model, ``breaker`` on a deployment; both are optional and every field has a
default, so configurations written before these existed keep working unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["weighted", "least_outstanding", "lowest_latency", "ordered"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RoutingSettings(_Frozen):
    """Per model: load-balancing strategy, retry budget, back-off and the overall deadline.

    ``strategy``: ``weighted`` (random, by deployment weight), ``least_outstanding`` (fewest
    requests in flight per unit of weight), ``lowest_latency`` (EWMA of recent attempts) or
    ``ordered`` (as listed: a primary and its backups). ``max_attempts`` bounds upstream calls for
    one request, fallback models included; ``attempts_per_deployment`` bounds the calls to one
    deployment (3 by default, the official SDKs' two retries, so a model with a single deployment
    rides out a transient 429 or 5xx). ``deadline_seconds`` bounds the whole request, streams
    included: no attempt and no back-off sleep runs past it. ``max_retry_after_seconds`` is the
    longest a request waits for an upstream's ``Retry-After``.
    """

    strategy: Strategy = "weighted"
    max_attempts: int = Field(6, ge=1, le=100)
    attempts_per_deployment: int = Field(3, ge=1, le=20)
    deadline_seconds: float = Field(600.0, gt=0)
    backoff_base_seconds: float = Field(0.25, ge=0)
    backoff_max_seconds: float = Field(4.0, ge=0)
    max_retry_after_seconds: float = Field(10.0, ge=0)

    @model_validator(mode="after")
    def _backoff_order(self) -> RoutingSettings:
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_max_seconds must not be below backoff_base_seconds")
        return self


class BreakerSettings(_Frozen):
    """Per deployment: the circuit breaker's thresholds.

    It opens after ``consecutive_failures`` failures in a row, or when at least ``min_requests``
    attempts in the last ``window_seconds`` failed at ``error_rate`` or more; after
    ``cooldown_seconds`` one probe request is let through, and its success closes it again.
    """

    enabled: bool = True
    consecutive_failures: int = Field(5, ge=1)
    error_rate: float = Field(0.5, gt=0, le=1)
    window_seconds: float = Field(30.0, gt=0)
    min_requests: int = Field(20, ge=1)
    cooldown_seconds: float = Field(30.0, gt=0)
