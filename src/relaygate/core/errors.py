"""The GatewayError family: every failure a caller can see, independent of dialect.

Each error carries the HTTP status the caller gets and a neutral ``kind``; each dialect's
``errors.py`` renders it once in its own error JSON. Messages are written for the caller and must
never contain upstream keys or stack traces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

ErrorKind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "payload_too_large",
    "rate_limited",
    "budget_exhausted",
    "overloaded",
    "upstream",
    "timeout",
    "unavailable",
    "internal",
]


CALLER_TEXT_LIMIT = 128
"""Characters of a caller's own value (model name, path) quoted back in a message or log line."""


def clip(text: str, limit: int = CALLER_TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, marked when cut: a caller must not be able to make
    the gateway echo (or log) a 100 kB value back."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class GatewayError(Exception):
    status: int = 500
    kind: ErrorKind = "internal"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        # What ``Exception.__init__(self, message)`` does, without the call through ``super()``
        # (a refusal builds one of these per request).
        self.args = (message,)
        self.message = message
        if status is not None:
            self.status = status
        self.param = param
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={self.message!r})"


class InvalidRequestError(GatewayError):
    status = 400
    kind = "invalid_request"


class AuthenticationError(GatewayError):
    status = 401
    kind = "authentication"


class PermissionDeniedError(GatewayError):
    status = 403
    kind = "permission"


class NotFoundError(GatewayError):
    status = 404
    kind = "not_found"


class ModelNotFoundError(NotFoundError):
    def __init__(self, model: str, available: Sequence[str]) -> None:
        listing = ", ".join(sorted(available)) or "none"
        super().__init__(
            f"The model '{clip(model)}' does not exist or is not served here. "
            f"Available models: {listing}",
            param="model",
        )
        self.model = model
        self.available = tuple(available)


class PayloadTooLargeError(GatewayError):
    status = 413
    kind = "payload_too_large"


class RateLimitedError(GatewayError):
    status = 429
    kind = "rate_limited"


class BudgetExhaustedError(GatewayError):
    status = 429
    kind = "budget_exhausted"


class BudgetHeldError(RateLimitedError):
    """A budget refusal only other requests' reservations in flight cause: it passes as they
    finish, so unlike ``BudgetExhaustedError`` it is retryable (after ``retry_after``)."""


class UpstreamError(GatewayError):
    """An upstream answered with an error or could not be reached.

    ``retryable`` says whether another attempt (same or other deployment) may succeed;
    ``upstream_status`` is what the upstream said (0 when no answer came).
    """

    status = 502
    kind: ErrorKind = "upstream"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        upstream_status: int = 0,
        retryable: bool = False,
        retry_after: float | None = None,
        kind: ErrorKind | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        self.upstream_status = upstream_status
        self.retryable = retryable
        if kind is not None:
            self.kind = kind


class UpstreamTimeoutError(UpstreamError):
    status = 504
    kind: ErrorKind = "timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class NoRouteError(GatewayError):
    """Every attempt failed; ``attempts`` lists what was tried, for the caller and the ledger."""

    status = 503
    kind = "unavailable"

    def __init__(
        self,
        message: str,
        attempts: Sequence[str],
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        self.attempts = tuple(attempts)


class InternalError(GatewayError):
    status = 500
    kind = "internal"
