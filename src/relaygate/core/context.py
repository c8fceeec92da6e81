"""Per-request bookkeeping: what the log line, the metrics and the ledger need to know."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from relaygate.core.capacity import Capacity
from relaygate.core.types import ChatRequest, DialectName, Usage


class Hold(Protocol):
    """A budget reservation held for the request, made and settled by ``relaygate.accounting``."""

    @property
    def amount_usd(self) -> float: ...


@dataclass(slots=True)
class AttemptRecord:
    deployment: str
    outcome: str
    status: int
    seconds: float


@dataclass(slots=True)
class RequestContext:
    request_id: str
    route: str
    dialect: DialectName
    started: float = field(default_factory=time.perf_counter)
    key_name: str | None = None
    model_requested: str | None = None
    model_used: str | None = None
    deployment: str | None = None
    stream: bool = False
    status: int = 200
    outcome: str = "ok"
    error_kind: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    upstream_seconds: float = 0.0
    waited_seconds: float = 0.0
    first_token_at: float | None = None
    usage: Usage | None = None
    cache_hit: bool = False
    # The response cache: hit, stale, miss or coalesced (None: not used, said as ``skip``), and
    # for a coalesced answer the request id of the call it shared.
    cache_status: str | None = None
    coalesced_with: str | None = None
    response_started: bool = False
    # Accounting: the decoded request (for estimates), the budget hold, characters of text
    # relayed in a stream (to bill a stream cut short), and the request's cost.
    chat_request: ChatRequest | None = None
    budget_hold: Hold | None = None
    delivered_chars: int = 0
    cost_usd: float = 0.0
    # Cost attribution (accounting.attribution): the caller's end user and its tags.
    end_user: str | None = None
    tags: dict[str, str] | None = None
    # Deployment caps to take per attempt (set by admission; None when no deployment has any).
    capacity: Capacity[Any] | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def overhead_seconds(self, elapsed: float | None = None) -> float:
        """Time the gateway itself spent: elapsed (``elapsed``, when already read) minus awaiting
        upstreams and back-off sleeps."""
        if elapsed is None:
            elapsed = self.elapsed()
        return max(0.0, elapsed - self.upstream_seconds - self.waited_seconds)

    def ttft_seconds(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started


def summarize_attempts(attempts: Sequence[AttemptRecord]) -> str:
    """``deployment:outcome:status:milliseconds`` per attempt, comma-separated (for the ledger)."""
    if len(attempts) == 1:  # nearly every request: no generator, no join
        return _attempt_text(attempts[0])
    return ",".join(map(_attempt_text, attempts))


# "deployment:outcome:status:" per such triple seen: configured deployments, a handful of
# outcomes and statuses, the same few on every request (bounded against surprises all the same).
_ATTEMPT_HEADS: dict[tuple[str, str, int], str] = {}
_ATTEMPT_HEADS_KEPT = 4096


def _attempt_text(attempt: AttemptRecord) -> str:
    key = (attempt.deployment, attempt.outcome, attempt.status)
    head = _ATTEMPT_HEADS.get(key)
    if head is None:
        head = f"{attempt.deployment}:{attempt.outcome}:{attempt.status}:"
        if len(_ATTEMPT_HEADS) < _ATTEMPT_HEADS_KEPT:
            _ATTEMPT_HEADS[key] = head
    return f"{head}{attempt.seconds * 1000:.0f}"
