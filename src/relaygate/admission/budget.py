"""How long a request may wait for admission: the configured maximum, the caller's own maximum
(``x-relaygate-max-wait-ms``) and what its client timeout leaves after a typical upstream call
(the official SDKs send their timeout as ``x-stainless-timeout``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from relaygate.admission.messages import header_number

MAX_WAIT_HEADER = "x-relaygate-max-wait-ms"
CLIENT_TIMEOUT_HEADER = "x-stainless-timeout"  # sent by the official OpenAI/Anthropic SDKs


def wait_budget(
    max_wait_seconds: float, headers: Mapping[str, str], typical_latency: Callable[[], float]
) -> float:
    """Seconds the request may wait; ``typical_latency`` is asked only when a client timeout
    was sent."""
    budget = max_wait_seconds
    # Each header is parsed only when sent (every request of a capped model asks); min and max
    # are written out as comparisons (the builtins parse their keyword arguments on every call).
    raw = headers.get(MAX_WAIT_HEADER)
    if raw is not None:
        asked = header_number(raw)
        if asked is not None and asked / 1000.0 < budget:
            budget = asked / 1000.0
    raw = headers.get(CLIENT_TIMEOUT_HEADER)
    if raw is not None:
        client_timeout = header_number(raw)
        if client_timeout is not None:
            left = client_timeout - typical_latency()
            if left < budget:
                budget = left
    return budget if budget > 0.0 else 0.0
