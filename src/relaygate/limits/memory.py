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
        """The refusal ``acquire_now(asks)`` would give now, taking nothing; None if it admits."""
        return self._refusal(asks, self._clock(), [])

    def settle_now(self, settles: Sequence[BucketSettle]) -> None:
        """``settle`` without the coroutine."""
        now = self._clock()
        for item in settles:
            state = self._refilled(item.name, item.rate, item.capacity, now)
            state[0] = max(-item.capacity, min(item.capacity, state[0] + item.refund))

    def release_now(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
        """``release`` without the coroutine."""
        if lease is not None and self._leases.pop(lease.id, None) is not None:
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
        retry, refused, queueable = 0.0, None, True
        for ask in asks:
            wait = self._shortfall(ask, now, refilled)
            if wait is not None:
                retry = max(retry, wait)
                refused = refused or ask.name
                queueable = queueable and ask.queueable
        if refused is None:
            return None
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
