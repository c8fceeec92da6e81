"""``BackgroundTask``: the one way a component owns a long-running asyncio loop.

Started at most once (inside the running event loop), stopped at most once: ``cancel`` for a
loop that may be cut anywhere, ``join`` for one that its owner has told to stop (by its own flag
or event) and that must finish its last round, such as a write that would otherwise roll back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

Work = Callable[[], Coroutine[Any, Any, None]]


class BackgroundTask:
    """One named background loop; ``start``, ``cancel`` and ``join`` are each safe to repeat."""

    __slots__ = ("_name", "_task", "_work")

    def __init__(self, name: str, work: Work) -> None:
        self._name = name
        self._work = work
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True between ``start`` and the first ``cancel`` or ``join``."""
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._work(), name=self._name)

    async def cancel(self) -> None:
        """Cancel the loop and wait until it has ended."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def join(self) -> None:
        """Wait for a loop told to stop to end by itself (its errors propagate)."""
        task, self._task = self._task, None
        if task is not None:
            await task
