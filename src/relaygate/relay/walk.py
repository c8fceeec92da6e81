"""One request's walk through its attempt plan: what it has left and what went wrong so far.

``Walk.exhausted`` turns that record into the one error that says most to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

from relaygate.admission.messages import busy_message
from relaygate.core.context import AttemptRecord, RequestContext
from relaygate.core.errors import (
    ErrorKind,
    GatewayError,
    NoRouteError,
    RateLimitedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from relaygate.routing.deadline import Deadline


class GatewayTimeoutError(GatewayError):
    """The request's deadline ran out, or every attempt timed out; ``attempts`` lists the tries."""

    status = 504
    kind: ErrorKind = "timeout"

    def __init__(self, message: str, attempts: Sequence[str]) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


class Walk:
    """One request's progress through its plan: the budget left and what went wrong so far."""

    __slots__ = (
        "busy",
        "ctx",
        "deadline",
        "failed_otherwise",
        "first_byte_stop",
        "last_error",
        "max_attempts",
        "out_of_time",
        "panic",
        "rate_limit_wait",
        "rate_limited",
        "refused",
        "retry_after",
        "timed_out",
    )

    def __init__(self, ctx: RequestContext, deadline: Deadline, max_attempts: int) -> None:
        self.ctx = ctx
        self.deadline = deadline
        self.max_attempts = max_attempts
        self.last_error: UpstreamError | None = None
        self.out_of_time = False
        self.timed_out = False  # an attempt timed out: later ones need a whole first-byte timeout
        # (first-byte timeout, seconds left) when a timeout left too little for another attempt.
        self.first_byte_stop: tuple[float, float] | None = None
        self.retry_after: float | None = None
        self.busy: float | None = None  # soonest room on a deployment found at capacity
        self.rate_limited = False  # some deployment refused for rate limiting (or is held back)
        self.rate_limit_wait: float | None = None  # the largest Retry-After seen
        self.failed_otherwise = False  # some attempt failed for another reason
        self.refused = 0  # deployments skipped because their breaker refused
        self.panic = False  # walking the plan again with breakers overridden

    @property
    def stopped(self) -> bool:
        """No further attempt may start: the deadline is spent, or too little of it is left
        after a timeout (``first_byte_stop``)."""
        return self.out_of_time or self.first_byte_stop is not None

    def blackholed(self, skipped: Sequence[str]) -> bool:
        """True when nothing was tried because breakers refused every deployment of the plan."""
        return not self.ctx.attempts and bool(skipped) and self.refused == len(skipped)

    def throttled(self, seconds: float | None) -> None:
        self.rate_limited = True
        if seconds is not None and (self.rate_limit_wait is None or seconds > self.rate_limit_wait):
            self.rate_limit_wait = seconds

    def at_capacity(self, seconds: float) -> None:
        if self.busy is None or seconds < self.busy:
            self.busy = seconds

    def failed(self, err: UpstreamError) -> None:
        self.last_error = err
        self.hint_retry_after(err.retry_after)
        if is_rate_limit(err):
            self.throttled(err.retry_after)
        else:
            self.failed_otherwise = True

    def hint_retry_after(self, seconds: float | None) -> None:
        if seconds is not None and (self.retry_after is None or seconds < self.retry_after):
            self.retry_after = seconds

    def exhausted(self, skipped: Sequence[str]) -> GatewayError:
        """The error that says most about a request nothing could answer."""
        attempts = self.ctx.attempts
        last = self.last_error
        lone = len({a.deployment for a in attempts}) == 1 and not skipped
        if last is not None and lone and self.first_byte_stop is not None:
            return UpstreamTimeoutError(f"{last.message}; {self._not_retried()}")
        if last is not None and lone and (not self.out_of_time or timed_out(last)):
            # One deployment only: its own error (a 429 stays a 429 with Retry-After) says most.
            return last
        tried = [describe(a) for a in attempts] + list(skipped)
        detail = "; ".join(tried) or "no deployment could be tried"
        if self.first_byte_stop is not None and not self.out_of_time:
            message = f"The upstream attempts timed out ({detail}); {self._not_retried()}"
            return GatewayTimeoutError(message, tried)
        if self.out_of_time or (attempts and all(a.outcome == "timeout" for a in attempts)):
            seconds = f"{self.deadline.seconds:g}"
            message = f"No upstream answered within the request deadline of {seconds} s ({detail})"
            return GatewayTimeoutError(message, tried)
        if self.rate_limited and not self.failed_otherwise:
            message = f"Every upstream deployment is rate limited ({detail})"
            return RateLimitedError(message, retry_after=self.rate_limit_wait)
        if not attempts and self.busy is not None:
            return RateLimitedError(busy_message(self.busy), retry_after=self.busy)
        if not attempts:
            message = f"No deployment is available: every circuit breaker is open ({detail})"
            return NoRouteError(message, tried, retry_after=self.retry_after)
        message = f"All upstream attempts failed ({detail})"
        return NoRouteError(message, tried, retry_after=self.retry_after)

    def _not_retried(self) -> str:
        """Why a timed-out request stopped before its deadline (see ``first_byte_stop``)."""
        assert self.first_byte_stop is not None
        first_byte, left = self.first_byte_stop
        return (
            f"not retried: {left:.1f} s of the {self.deadline.seconds:g} s request deadline left, "
            f"less than the {first_byte:g} s first-byte timeout another attempt needs"
        )


def describe(record: AttemptRecord) -> str:
    return f"{record.deployment}: {record.outcome} {record.status or ''}".strip()


def is_rate_limit(err: UpstreamError) -> bool:
    return err.upstream_status == 429 or err.kind == "rate_limited"


def timed_out(err: UpstreamError) -> bool:
    return isinstance(err, UpstreamTimeoutError) or err.kind == "timeout"
