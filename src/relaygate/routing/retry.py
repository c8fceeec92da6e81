"""Retry policy: exponential back-off with full jitter, Retry-After honoured up to a cap.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of many
callers that failed together, so they do not return in a synchronised wave. A ``Retry-After``
from the upstream is a floor on the wait, capped so a provider cannot park a request for minutes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from relaygate.settings.routing import RoutingSettings

MIN_ATTEMPT_SECONDS = 0.01
"""No attempt starts with less than this left of the deadline: it could only time out."""


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """How often to try, and how long to wait between tries of one deployment."""

    max_attempts: int = 6
    attempts_per_deployment: int = 3
    base_delay: float = 0.25
    max_delay: float = 4.0
    max_retry_after: float = 10.0

    @classmethod
    def from_settings(cls, settings: RoutingSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            attempts_per_deployment=settings.attempts_per_deployment,
            base_delay=settings.backoff_base_seconds,
            max_delay=settings.backoff_max_seconds,
            max_retry_after=settings.max_retry_after_seconds,
        )

    def backoff(self, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based) on the same deployment."""
        exponent = min(retry_number - 1, 62)
        ceiling = min(self.max_delay, self.base_delay * (2.0**exponent))
        delay = rng.uniform(0.0, ceiling)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def delay_within(
        self,
        retry_number: int,
        retry_after: float | None,
        remaining: float,
        rng: random.Random,
    ) -> float | None:
        """The back-off before a retry, or ``None`` when waiting it would leave no time to try.

        ``remaining`` is what is left of the request's deadline; a retry is only worth it if the
        wait ends with at least ``MIN_ATTEMPT_SECONDS`` to spare.
        """
        delay = self.backoff(retry_number, retry_after, rng)
        if delay + MIN_ATTEMPT_SECONDS > remaining:
            return None
        return delay
