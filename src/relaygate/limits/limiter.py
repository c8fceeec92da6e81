"""The RateLimiter seam: asks over named buckets, admitted all-or-nothing, settled afterwards.

Two kinds of bucket cover every limit the gateway knows:

- ``RATE``: a token bucket refilled at ``rate`` tokens per second up to ``capacity`` (the burst).
  Requests per second, per minute (``rate = rpm / 60``, ``capacity = rpm``) and tokens per minute
  (``cost`` = the tokens reserved for the request) are all rate buckets.
- ``CONCURRENCY``: at most ``capacity`` leases held at once; an admitted request holds one lease
  in each of its concurrency buckets until it is released.

Every implementation (memory, Redis) passes the same contract suite (tests/contract).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from relaygate.core.frozen import quick_init

# A refused concurrency bucket has no refill time to report: this is the hint given instead.
CONCURRENCY_RETRY_SECONDS = 1.0


class BucketKind(enum.Enum):
    RATE = "r"
    CONCURRENCY = "c"


@quick_init
@dataclass(frozen=True, slots=True)
class BucketAsk:
    """One bucket a request must fit in.

    A ``cost`` above ``capacity`` is clamped to ``capacity``: a request larger than the whole
    bucket still passes once the bucket is full instead of never. ``queueable`` marks momentary
    capacity (a deployment's caps): refused there, a request may wait in the admission queue;
    refused by a non-queueable bucket (the key's own quota) it is answered 429 at once.

    ``behind`` (concurrency buckets only) names another concurrency bucket whose leases count as
    held in this one for this ask: the claims of requests that come first (a high-priority
    request waiting in any process for a slot of this bucket), so that a slot freed anywhere is
    left to them.

    ``keep_lowest`` (concurrency buckets only, seconds): the capacity asked stays binding on every
    ask of the bucket that long, so the bucket admits up to the lowest capacity any asker (any
    process) asked within about that long, not each asker's own. For a capacity each process
    works out from its own estimate: the first process whose estimate shrinks shrinks it for all.
    """

    name: str
    kind: BucketKind
    capacity: float
    rate: float = 0.0
    cost: float = 1.0
    queueable: bool = False
    behind: str | None = None
    keep_lowest: float = 0.0

    @classmethod
    def token_bucket(
        cls, name: str, rate: float, burst: float, cost: float = 1.0, queueable: bool = False
    ) -> BucketAsk:
        """``rate`` tokens per second, at most ``burst`` saved up."""
        return cls(name, BucketKind.RATE, float(burst), float(rate), float(cost), queueable)

    @classmethod
    def per_minute(
        cls, name: str, limit: float, cost: float = 1.0, queueable: bool = False
    ) -> BucketAsk:
        """``limit`` per minute: a bucket of ``limit`` tokens refilled over one minute."""
        return cls(name, BucketKind.RATE, float(limit), limit / 60.0, float(cost), queueable)

    @classmethod
    def concurrency(
        cls,
        name: str,
        limit: int,
        queueable: bool = False,
        behind: str | None = None,
        keep_lowest: float = 0.0,
    ) -> BucketAsk:
        """At most ``limit`` requests holding this bucket at once (counting the leases of
        ``behind`` as held here, for this ask; at most the lowest limit asked within the last
        ``keep_lowest`` seconds, when given)."""
        kind = BucketKind.CONCURRENCY
        return cls(name, kind, float(limit), 0.0, 1.0, queueable, behind, keep_lowest)

    @property
    def effective_cost(self) -> float:
        return min(self.cost, self.capacity)


@quick_init
@dataclass(frozen=True, slots=True)
class BucketSettle:
    """A true-up of a rate bucket once the real cost is known.

    ``refund`` tokens go back into the bucket (negative takes more: the request cost more than it
    reserved, and the debt delays the next requests). The bucket never exceeds ``capacity`` and
    never goes below ``-capacity``.
    """

    name: str
    rate: float
    capacity: float
    refund: float

    @classmethod
    def true_up(cls, ask: BucketAsk, actual: float) -> BucketSettle:
        """The settle for ``ask`` when the request really cost ``actual``."""
        return cls(ask.name, ask.rate, ask.capacity, ask.effective_cost - actual)


@quick_init
@dataclass(frozen=True, slots=True)
class Lease:
    """The concurrency slots an admitted request holds; ``backend`` says which limiter owns it."""

    id: str
    names: tuple[str, ...]
    backend: str


@quick_init
@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to ``acquire``.

    Refused: ``retry_after`` (seconds) is when the fullest refusing bucket may have room,
    ``refused`` names the first refusing bucket, and ``queueable`` is true when every refusing
    bucket is queueable. Admitted: ``lease`` holds the concurrency slots, if any were asked.
    """

    admitted: bool
    retry_after: float = 0.0
    refused: str | None = None
    queueable: bool = False
    lease: Lease | None = None


ADMITTED = Admission(True)


class LimiterUnavailableError(Exception):
    """The shared limiter's store could not be reached (mapped once, at the Redis edge)."""


class RateLimiter(Protocol):
    """Admission over named buckets, atomic across all of one request's buckets."""

    @property
    def backend(self) -> str:
        """``memory`` or ``redis``: where the counts live."""
        ...

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission:
        """Take ``cost`` from every rate bucket and a lease in every concurrency bucket, or take
        nothing at all and say when to retry."""
        ...

    async def settle(self, settles: Sequence[BucketSettle]) -> None:
        """True up rate buckets (TPM) once the request's real usage is known."""
        ...

    async def release(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
        """Give back the lease's slots and apply ``settles`` (one round trip for both).

        Releasing the same lease twice is harmless.
        """
        ...

    async def close(self) -> None:
        """Stop background work and free connections."""
        ...
