"""What a refused request is told: the busy message, the key-limit message, Retry-After."""

from __future__ import annotations

import math

from relaygate.core.errors import RateLimitedError
from relaygate.limits.limiter import Admission
from relaygate.limits.resilient import SHARED_DOWN

QUEUE_RESULTS = {
    "full": "queue_full",
    "evicted": "queue_full",
    "timeout": "queue_timeout",
    "expected_wait": "busy",
}
KEY_LIMIT_MESSAGES = {
    "rps": "request rate limit (requests per second)",
    "rpm": "requests-per-minute limit",
    "tpm": "tokens-per-minute limit",
    "conc": "limit of concurrent requests",
}


def whole_seconds(retry_after: float) -> int:
    """Retry-After as the header carries it: whole seconds, at least 1."""
    return max(1, math.ceil(retry_after))


def busy_message(retry_after: float) -> str:
    """The message of every capacity refusal."""
    return f"relaygate is busy: retry in {whole_seconds(retry_after)} s"


def header_number(raw: str | None) -> float | None:
    """A non-negative finite number from a header value, or None."""
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def refusal(admission: Admission) -> tuple[str, RateLimitedError]:
    """The admission-decision result to count and the 429 for a refused ``admission``."""
    retry = admission.retry_after
    refused = admission.refused or ""
    if refused == SHARED_DOWN:
        message = (
            "relaygate is busy: shared rate limits are unavailable; "
            f"retry in {whole_seconds(retry)} s"
        )
        return "shared_unavailable", RateLimitedError(message, retry_after=retry)
    if refused.startswith("k:"):
        limit = refused.rsplit(":", 1)[-1]
        message = KEY_LIMIT_MESSAGES.get(limit, "rate limit")
        return "key_limit", RateLimitedError(
            f"This API key exceeded its {message}: retry in {whole_seconds(retry)} s",
            retry_after=retry,
        )
    return "busy", RateLimitedError(busy_message(retry), retry_after=retry)
