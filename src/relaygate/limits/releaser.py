"""Releases off the hot path: a request's finish never awaits the shared store.

The handler's ``finally`` hands the lease and the TPM true-ups over synchronously (so a
cancelled request still releases); this owned task sends them to the limiter in small
concurrent batches and then tells the pool's queue that capacity is free.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from relaygate.core.background import BackgroundTask
from relaygate.limits.limiter import BucketSettle, Lease, LimiterUnavailableError, RateLimiter

logger = logging.getLogger("relaygate.admission")

BATCH = 64
Release = tuple[Lease | None, Sequence[BucketSettle], Callable[[], None] | None]


class Releaser:
    """Sends releases to ``limiter`` in the background, in order of hand-over."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._pending: asyncio.Queue[Release] = asyncio.Queue()
        self._loop = BackgroundTask("relaygate-releaser", self._run)

    def start(self) -> None:
        self._loop.start()

    def submit(
        self,
        lease: Lease | None,
        settles: Sequence[BucketSettle],
        then: Callable[[], None] | None = None,
    ) -> None:
        """Queue a release; ``then`` runs once the limiter has it."""
        self._pending.put_nowait((lease, settles, then))

    @property
    def pending(self) -> int:
        return self._pending.qsize()

    async def drain(self) -> None:
        """Send everything handed over so far."""
        while not self._pending.empty():
            await self._send_batch(self._take_batch())

    async def close(self) -> None:
        """Drain, then stop the task."""
        await self._loop.cancel()
        await self.drain()

    def _take_batch(self) -> list[Release]:
        batch: list[Release] = []
        while len(batch) < BATCH and not self._pending.empty():
            batch.append(self._pending.get_nowait())
        return batch

    async def _run(self) -> None:
        while True:
            first = await self._pending.get()
            await self._send_batch([first, *self._take_batch()])

    async def _send_batch(self, batch: list[Release]) -> None:
        results = await asyncio.gather(
            *(self._limiter.release(lease, settles) for lease, settles, _ in batch),
            return_exceptions=True,
        )
        for (_, _, then), result in zip(batch, results, strict=True):
            if isinstance(result, LimiterUnavailableError):
                logger.warning("release failed; the lease expires by its TTL: %s", result)
            elif isinstance(result, BaseException):
                logger.error("release failed unexpectedly", exc_info=result)
            if then is not None:
                then()
