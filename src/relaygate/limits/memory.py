"""The in-process limiter: exact for one process, no I/O, atomic because it never awaits."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence

from relaygate.limits.limiter import (
    ADMITTED,
    CONCURRENCY_RETRY_SECONDS,
    Admission,
    BucketAsk,
    BucketKind,
    BucketSettle,
    Lease,
)

BACKEND = "memory"
# A remembered refusal is worked out afresh this close to when its bucket fits (float rounding).
FIT_MARGIN_SECONDS = 1e-6
MAX_REMEMBERED = 256  # refusals remembered at once (asks objects: a few per key and deployment)


class MemoryLimiter:
    """Token buckets and concurrency counters in dicts, keyed by bucket name.

    Each method does its whole check-and-apply without an ``await``, so concurrent requests on
    one event loop see the buckets move atomically. The ``*_now`` variants are the same
    operations for synchronous callers (the shared limiter's local fallback).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, list[float]] = {}  # name -> [tokens, updated_at]
        self._held: dict[str, int] = {}
        self._leases: dict[str, tuple[str, ...]] = {}
        self._lowest: dict[str, tuple[float, float]] = {}  # name -> (capacity, binding until)
        self._ids = itertools.count(1)
        # Bumped by every change of the buckets other than their refill over time (a take, a
        # settle, a release): a refusal seen at one version holds, moving only with the clock,
        # until the next bump or until its first refusing bucket refills (``_Refused``).
        self._version = 0
        self._refused: dict[int, _Refused] = {}
        # Asks that fit at a version go on fitting until the next bump (buckets only refill).
        self._fitting: dict[int, tuple[Sequence[BucketAsk], int]] = {}
        # The last refusal's seconds until its first refusing rate bucket fits, and its
        # concurrency buckets' hint (0 when none refused): what ``_Refused`` needs besides it.
        self._last_fits = math.inf
        self._last_hint = 0.0

    @property
    def backend(self) -> str:
        return BACKEND

    def held(self, name: str) -> int:
        """Leases held now in the concurrency bucket ``name``."""
        return self._held.get(name, 0)

    def tokens(self, name: str, rate: float, capacity: float) -> float:
        """Tokens in the rate bucket ``name`` now (a bucket never used is full)."""
        return self._refilled(name, rate, capacity, self._clock())[0]

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission:
        return self.acquire_now(asks)

    async def settle(self, settles: Sequence[BucketSettle]) -> None:
        self.settle_now(settles)

    async def release(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
        self.release_now(lease, settles)

    async def close(self) -> None:
        return None

    def acquire_now(self, asks: Sequence[BucketAsk]) -> Admission:
        """``acquire`` without the coroutine."""
        if not asks:
            return ADMITTED
        now = self._clock()
        refilled: list[float] = []
        refusal = self._refusal(asks, now, refilled)
        for ask in asks:
            if ask.keep_lowest > 0:
                self._keep_lowest(ask, now)
        if refusal is not None:
            return refusal
        return Admission(True, lease=self._apply(asks, now, refilled))

    def would_refuse(self, asks: Sequence[BucketAsk]) -> Admission | None:
        """The refusal ``acquire_now(asks)`` would give now, taking nothing; None if it admits.

        Asked again and again with the same ``asks`` object while nothing but the clock changes
        the buckets (an empty key's every request, a full deployment's every no-wait request, the
        key check of each), the answer is worked out once: a refusal is then only moved with the
        clock (``_Refused``), and asks that fit go on fitting (buckets only refill)."""
        fitting = self._fitting.get(id(asks))
        if fitting is not None and fitting[0] is asks and fitting[1] == self._version:
            return None  # they fit at this version: refills only add to that
        now = self._clock()
        memo = self._refused.get(id(asks))
        if memo is not None and memo.asks is asks:
            if memo.version == self._version and now < memo.until:
                fixed = memo.fixed  # memo.at(now) without the call: a full deployment's refusal
                return fixed if fixed is not None else memo.at(now)
            del self._refused[id(asks)]
        refusal = self._refusal(asks, now, [])
        if any(ask.keep_lowest > 0 for ask in asks):
            # Their answer also moves with the kept capacity, which a refused ask can lower
            # (no version bump) and which expires with the clock: always worked out afresh.
            return refusal
        if refusal is None:
            if len(self._fitting) >= MAX_REMEMBERED:
                self._fitting.clear()
            self._fitting[id(asks)] = (asks, self._version)
        else:
            if len(self._refused) >= MAX_REMEMBERED:
                self._refused.clear()
            self._refused[id(asks)] = _Refused(
                asks, self._version, now, refusal, self._last_fits, self._last_hint
            )
        return refusal

    def settle_now(self, settles: Sequence[BucketSettle]) -> None:
        """``settle`` without the coroutine."""
        now = self._clock()
        self._version += 1
        for item in settles:
            state = self._refilled(item.name, item.rate, item.capacity, now)
            state[0] = max(-item.capacity, min(item.capacity, state[0] + item.refund))

    def release_now(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
        """``release`` without the coroutine."""
        if lease is not None and self._leases.pop(lease.id, None) is not None:
            self._version += 1
            for name in lease.names:
                left = self._held.get(name, 0) - 1
                if left > 0:
                    self._held[name] = left
                else:
                    self._held.pop(name, None)
        if settles:
            self.settle_now(settles)

    def _refusal(
        self, asks: Sequence[BucketAsk], now: float, refilled: list[float]
    ) -> Admission | None:
        retry, refused, queueable, fits, hint = 0.0, None, True, math.inf, 0.0
        for ask in asks:
            wait = self._shortfall(ask, now, refilled)
            if wait is not None:
                retry = max(retry, wait)
                refused = refused or ask.name
                queueable = queueable and ask.queueable
                if ask.kind is BucketKind.RATE:
                    fits = min(fits, wait)
                else:
                    hint = max(hint, wait)
        if refused is None:
            return None
        self._last_fits, self._last_hint = fits, hint
        return Admission(False, retry, refused, queueable)

    def _keep_lowest(self, ask: BucketAsk, now: float) -> None:
        """Record the capacity ``ask`` asked: binding for ``keep_lowest`` seconds unless a lower
        one is already binding (asked, whether admitted or not)."""
        kept = self._lowest.get(ask.name)
        if kept is None or kept[1] < now or ask.capacity <= kept[0]:
            self._lowest[ask.name] = (ask.capacity, now + ask.keep_lowest)

    def _shortfall(self, ask: BucketAsk, now: float, refilled: list[float]) -> float | None:
        """Seconds until ``ask`` fits, or None when it fits now (its tokens go to ``refilled``)."""
        if ask.kind is BucketKind.CONCURRENCY:
            held = self._held.get(ask.name, 0)
            if ask.behind is not None:
                held += self._held.get(ask.behind, 0)
            capacity = ask.capacity
            if ask.keep_lowest > 0 and (kept := self._lowest.get(ask.name)) and kept[1] >= now:
                capacity = min(capacity, kept[0])
            return None if held + 1 <= capacity else CONCURRENCY_RETRY_SECONDS
        tokens = self._refilled(ask.name, ask.rate, ask.capacity, now)[0]
        refilled.append(tokens)
        cost = ask.effective_cost
        if tokens >= cost:
            return None
        return (cost - tokens) / ask.rate if ask.rate > 0 else math.inf

    def _apply(self, asks: Sequence[BucketAsk], now: float, refilled: list[float]) -> Lease | None:
        self._version += 1
        names: list[str] = []
        rates = iter(refilled)
        for ask in asks:
            if ask.kind is BucketKind.CONCURRENCY:
                self._held[ask.name] = self._held.get(ask.name, 0) + 1
                names.append(ask.name)
            else:
                self._tokens[ask.name] = [next(rates) - ask.effective_cost, now]
        if not names:
            return None
        lease = Lease(f"m{next(self._ids)}", tuple(names), BACKEND)
        self._leases[lease.id] = lease.names
        return lease

    def _refilled(self, name: str, rate: float, capacity: float, now: float) -> list[float]:
        state = self._tokens.get(name)
        if state is None:
            state = [capacity, now]
            self._tokens[name] = state
            return state
        tokens, updated = state
        state[0] = min(capacity, tokens + max(0.0, now - updated) * rate)
        state[1] = now
        return state


class _Refused:
    """A refusal of ``asks`` worked out at ``version`` and clock ``since``, and what it is later.

    Until the buckets change otherwise (``version``), only the clock moves a refusal: every
    refusing rate bucket's wait shrinks by the time passed (its tokens are below its cost, so
    below its capacity, where the refill would stop), a refusing concurrency bucket keeps its
    fixed hint, and buckets that fit go on fitting (they only refill). So the refusal stays the
    same one, first refusing bucket and all, until its first refusing rate bucket fits
    (``until``); its Retry-After is the longest rate wait less the time passed, or the hint if
    that is longer: what ``_refusal`` would work out (equal up to float rounding).
    """

    __slots__ = (
        "asks",
        "fixed",
        "hint",
        "queueable",
        "refused",
        "since",
        "until",
        "version",
        "wait",
    )

    def __init__(
        self,
        asks: Sequence[BucketAsk],
        version: int,
        since: float,
        refusal: Admission,
        fits: float,
        hint: float,
    ) -> None:
        self.asks = asks  # held: its id cannot be another object's while this is remembered
        self.version = version
        self.since = since
        self.until = since + fits - FIT_MARGIN_SECONDS
        self.refused = refusal.refused
        self.queueable = refusal.queueable
        self.wait = refusal.retry_after
        self.hint = hint
        # No rate bucket refuses (or none that ever refills): nothing moves, the refusal is reused.
        self.fixed = refusal if fits == math.inf else None

    def at(self, now: float) -> Admission:
        if self.fixed is not None:
            return self.fixed
        wait = max(self.hint, self.wait - (now - self.since))
        return Admission(False, wait, self.refused, self.queueable)
