"""Retry delays: exponential backoff with full jitter, so retries of many jobs spread out."""

from __future__ import annotations

import random

BASE_SECONDS = 2.0
CAP_SECONDS = 300.0


def retry_delay(
    attempt: int,
    *,
    base: float = BASE_SECONDS,
    cap: float = CAP_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retrying after failed ``attempt`` (1-based): uniform in [ceiling/2, ceiling]
    where the ceiling doubles per attempt up to ``cap``."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)
