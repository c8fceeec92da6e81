"""Shared limits that survive their store: Redis while it answers, this process's own otherwise.

When Redis stops answering, the gateway keeps serving: ``fail_open`` admits against a local
``MemoryLimiter`` with the same limits (each process then enforces them on its own), otherwise
requests that need shared limits are refused. The switch is logged and exported; a probe brings
the shared limits back as soon as Redis answers again. The hot path never waits on a Redis that
is known to be down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from relaygate.core.background import BackgroundTask
from relaygate.limits.limiter import (
    Admission,
    BucketAsk,
    BucketSettle,
    Lease,
    LimiterUnavailableError,
)
from relaygate.limits.memory import BACKEND as MEMORY
from relaygate.limits.memory import MemoryLimiter

logger = logging.getLogger("relaygate.admission")

SHARED_DOWN = "shared-limits-unavailable"
StateHook = Callable[[bool], None]


class SharedLimiter(Protocol):
    """What the wrapper needs of the shared limiter (``RedisLimiter``)."""

    @property
    def backend(self) -> str: ...

    async def start(self) -> None: ...

    async def ping(self) -> None: ...

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission: ...

    async def release(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None: ...

    def forget_leases(self) -> None: ...

    async def close(self) -> None: ...


class ResilientLimiter:
    """A shared limiter with a local fallback and a recovery probe it owns."""

    def __init__(
        self,
        shared: SharedLimiter,
        local: MemoryLimiter | None = None,
        *,
        fail_open: bool = True,
        probe_seconds: float = 1.0,
        on_state: StateHook | None = None,
    ) -> None:
        self._shared = shared
        self._local = local or MemoryLimiter()
        self._fail_open = fail_open
        self._probe_seconds = probe_seconds
        self._on_state = on_state
        self._up = True
        self._went_down = asyncio.Event()
        # Shared leases whose release Redis did not take (it was down, or the call failed): sent
        # when it answers again, so their slots come back then and not only at their TTL. Bounded
        # by the leases held in Redis when it went down (admissions meanwhile are local).
        self._unreleased: dict[str, Lease] = {}
        self._prober = BackgroundTask("relaygate-redis-probe", self._probe_forever)

    @property
    def backend(self) -> str:
        return self._shared.backend if self._up else self._local.backend

    @property
    def shared_up(self) -> bool:
        """True while the shared (Redis) limits are in force."""
        return self._up

    async def start(self) -> None:
        """Connect; a Redis that is down at start-up only starts us in the fallback state."""
        try:
            await self._shared.start()
        except LimiterUnavailableError as exc:
            self._mark_down(exc)
        else:
            self._notify()
        self._prober.start()

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission:
        if self._up:
            try:
                return await self._shared.acquire(asks)
            except LimiterUnavailableError as exc:
                self._mark_down(exc)
        if self._fail_open:
            return self._local.acquire_now(asks)
        return Admission(False, self._probe_seconds, SHARED_DOWN, queueable=False)

    async def settle(self, settles: Sequence[BucketSettle]) -> None:
        await self.release(None, settles)

    async def release(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
        if lease is not None and lease.backend == MEMORY:
            # Admitted locally during an outage; true-ups go to whichever buckets are in force.
            self._local.release_now(lease)
            lease = None
        if not self._up:
            if lease is not None:
                self._unreleased[lease.id] = lease
            self._local.release_now(None, settles)
            return
        if lease is None and not settles:
            return
        try:
            await self._shared.release(lease, settles)
        except LimiterUnavailableError as exc:
            # The true-up is lost with the outage; the lease goes back when Redis answers.
            if lease is not None:
                self._unreleased[lease.id] = lease
            self._mark_down(exc)

    async def close(self) -> None:
        await self._prober.cancel()
        await self._shared.close()

    def _mark_down(self, exc: Exception) -> None:
        if not self._up:
            return
        self._up = False
        self._shared.forget_leases()
        mode = "local limits per process" if self._fail_open else "refusing limited requests"
        logger.error("shared limits unavailable (%s); %s until Redis answers", exc, mode)
        self._went_down.set()
        self._notify()

    def _notify(self) -> None:
        if self._on_state is not None:
            self._on_state(self._up)

    async def _release_unreleased(self) -> None:
        leases = list(self._unreleased.values())
        results = await asyncio.gather(
            *(self._shared.release(lease) for lease in leases), return_exceptions=True
        )
        for lease, result in zip(leases, results, strict=True):
            if isinstance(result, LimiterUnavailableError):
                raise result  # still down: the rest go with the next probe
            if isinstance(result, BaseException):
                logger.error("release of a lease held through the outage failed", exc_info=result)
            del self._unreleased[lease.id]
        if leases:
            logger.warning("released %d leases held in Redis through the outage", len(leases))

    async def _probe_forever(self) -> None:
        while True:
            await self._went_down.wait()
            await asyncio.sleep(self._probe_seconds)
            try:
                await self._shared.ping()
                await self._release_unreleased()
            except LimiterUnavailableError:
                continue
            self._went_down.clear()
            self._up = True
            logger.warning("Redis answers again: shared limits resumed")
            self._notify()
