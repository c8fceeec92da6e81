"""Request coalescing in one process: identical requests in flight share one upstream call.

A ``Flight`` is that one call's answer as neutral stream events, appended as they arrive and kept
from the start, so a caller that joins late still reads every event in order. Callers only read:
one going away touches nobody else. The producer (the upstream call) runs on its own task, owned
by the flight, and is cancelled only once every caller has gone. The flight leaves the registry
when the producer ends, so a request arriving after that is answered by the cache, not the flight.
Across processes nothing is shared here: only the cache is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable

from relaygate.core.errors import GatewayError, InternalError
from relaygate.core.events import StreamError, StreamEvent
from relaygate.core.types import ChatResponse

logger = logging.getLogger("relaygate.cache")
Producer = Callable[["Flight"], Awaitable[None]]


class Flight:
    """One upstream call's events, readable from the start by any number of callers."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self.done = False
        self.abandoned = False  # every caller left: the call is being cancelled
        self.followers = 0
        # Set by the producer for the followers' ledger rows: the leader's request id, and the
        # model and deployment that answered.
        self.leader: str | None = None
        self.model: str | None = None
        self.deployment: str | None = None
        # The whole answer and its body per dialect, made by the first caller that needs it once
        # the flight has ended well: hundreds of followers woken at once each encoded it again.
        self.wholes: dict[str, tuple[ChatResponse, bytes]] = {}
        self._changed = asyncio.Event()
        self._readers = 0
        self._task: asyncio.Task[None] | None = None

    def push(self, events: list[StreamEvent]) -> None:
        if events:
            self.events.extend(events)
            self._wake()

    def fail(self, err: GatewayError) -> None:
        """End the flight with ``err``: every reader gets it in its own dialect."""
        self.events.append(StreamError(err))
        self.finish()

    def finish(self) -> None:
        self.done = True
        self._wake()

    async def read(self) -> AsyncGenerator[StreamEvent, None]:
        """Every event from the first, in order, until the flight ends."""
        self._readers += 1
        try:
            index = 0
            while True:
                while index < len(self.events):
                    yield self.events[index]
                    index += 1
                if self.done:
                    return
                await self._changed.wait()
        finally:
            self._readers -= 1
            if self._readers == 0 and not self.done and self._task is not None:
                # Nobody is left to answer: stop paying for the upstream call.
                self.abandoned = True
                self._task.cancel()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class Flights:
    """The flights in progress, by cache key (which includes the scope)."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def join(self, key: Hashable) -> Flight | None:
        """The flight in progress for ``key``, counting the caller as a follower."""
        flight = self._flights.get(key)
        if flight is None or flight.abandoned:
            return None
        flight.followers += 1
        return flight

    def start(self, key: Hashable, produce: Producer) -> Flight:
        """A new flight for ``key`` whose events ``produce`` pushes, on a task of its own."""
        flight = Flight()
        self._flights[key] = flight
        flight._task = asyncio.create_task(self._run(key, flight, produce))
        return flight

    async def _run(self, key: Hashable, flight: Flight, produce: Producer) -> None:
        try:
            await produce(flight)
        except asyncio.CancelledError:
            flight.fail(GatewayError("the upstream call was cancelled"))
        except GatewayError as err:
            flight.fail(err)
        except Exception:
            logger.exception("coalesced upstream call failed")
            flight.fail(InternalError("Internal gateway error"))
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if not flight.done:
                flight.finish()

    async def close(self) -> None:
        """Cancel every flight still in progress (shutdown)."""
        tasks = [f._task for f in self._flights.values() if f._task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
