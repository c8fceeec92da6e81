"""Group commit: writes asked for while another is running share the next one.

A caller hands in one item and gets its own answer back only once the batch that carried it
was written (durable), so an event's 202 or a job's end is still acknowledged after its row is
committed. Under load, one transaction carries many items instead of one each; alone, an item
is written at once (no timer to wait out).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")
WriteMany = Callable[[Sequence[Item]], Awaitable[Sequence[Answer]]]
MAX_BATCH = 256


class GroupCommit(Generic[Item, Answer]):
    """``write`` takes a batch and answers in its order; at most one write runs at a time.
    ``window``: how long the first item of an idle group waits for company (0: one loop turn)."""

    def __init__(
        self, write: WriteMany[Item, Answer], *, max_batch: int = MAX_BATCH, window: float = 0.0
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._window = window
        self._pending: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending(), name="group-commit")
        try:
            # Shielded: a caller that gives up (a client gone) leaves its item to the batch.
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_consume)
            raise

    async def close(self) -> None:
        """Wait for the writes already asked for."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write_pending(self) -> None:
        try:
            # At least one turn of the loop: the callers already runnable join the first batch.
            await asyncio.sleep(self._window)
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write_batch(batch)
        finally:
            self._writer = None
            for _, future in self._pending:  # only after a cancellation
                future.cancel()
            self._pending.clear()

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self._write([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)


def _consume(future: asyncio.Future[Any]) -> None:
    """Nobody waits for this answer any more: take its error so it is not reported unread."""
    if not future.cancelled():
        future.exception()
