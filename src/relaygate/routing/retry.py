"""Retry policy: exponential back-off with full jitter, Retry-After honoured up to a cap."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    attempts_per_deployment: int = 2
    base_delay: float = 0.25
    max_delay: float = 4.0
    max_retry_after: float = 10.0

    def backoff(self, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based) on the same deployment."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        delay = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay
