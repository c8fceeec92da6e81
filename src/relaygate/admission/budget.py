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
    asked = header_number(headers.get(MAX_WAIT_HEADER))
    if asked is not None:
        budget = min(budget, asked / 1000.0)
    client_timeout = header_number(headers.get(CLIENT_TIMEOUT_HEADER))
    if client_timeout is not None:
        budget = min(budget, client_timeout - typical_latency())
    return max(0.0, budget)
