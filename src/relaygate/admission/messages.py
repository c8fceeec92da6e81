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
    # whole_seconds(retry_after), inlined: every busy refusal comes here.
    seconds = 1 if retry_after <= 1.0 else math.ceil(retry_after)
    known = _BUSY_TEXTS.get(seconds)
    if known is None:
        if len(_BUSY_TEXTS) >= MAX_REFUSAL_TEXTS:
            _BUSY_TEXTS.clear()
        known = _BUSY_TEXTS[seconds] = f"relaygate is busy: retry in {seconds} s"
    return known


def header_number(raw: str | None) -> float | None:
    """A non-negative finite number from a header value, or None."""
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0.0 <= value < math.inf else None  # finite, not negative (nor NaN)


def refusal(admission: Admission) -> tuple[str, RateLimitedError]:
    """The admission-decision result to count and the 429 for a refused ``admission``."""
    retry = admission.retry_after
    # whole_seconds(retry), inlined: every refusal of a spent key comes here.
    said = (admission.refused or "", math.ceil(retry) if retry > 1.0 else 1)
    known = _REFUSAL_TEXTS.get(said)
    if known is None:
        if len(_REFUSAL_TEXTS) >= MAX_REFUSAL_TEXTS:
            _REFUSAL_TEXTS.clear()
        known = _REFUSAL_TEXTS[said] = refusal_text(*said)
    result, message = known
    return result, RateLimitedError(message, retry_after=retry)


def refusal_text(refused: str, seconds: int) -> tuple[str, str]:
    """The result and the message of a refusal by the bucket ``refused``, retry in ``seconds``."""
    if refused == SHARED_DOWN:
        message = f"relaygate is busy: shared rate limits are unavailable; retry in {seconds} s"
        return "shared_unavailable", message
    if refused.startswith("k:"):
        limit = refused.rsplit(":", 1)[-1]
        name = KEY_LIMIT_MESSAGES.get(limit, "rate limit")
        return "key_limit", f"This API key exceeded its {name}: retry in {seconds} s"
    return "busy", busy_message(seconds)


# A refusal's text depends only on its bucket and whole seconds: worked out once per pair (an
# empty key's every request is refused with the same text for seconds on end).
MAX_REFUSAL_TEXTS = 1024
_REFUSAL_TEXTS: dict[tuple[str, int], tuple[str, str]] = {}
_BUSY_TEXTS: dict[int, str] = {}
