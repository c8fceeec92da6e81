"""The admission queue: requests wait here while their deployment is momentarily full.

Waiters are served by key priority (higher first), then by arrival. Only the head of the queue
asks the limiters, so a late high-priority request overtakes earlier low-priority ones and equal
priorities keep their order. The depth is bounded over all queues of a process; when it is full
a newcomer evicts the newest waiter of a lower priority, or is refused. A request whose expected
wait exceeds its remaining budget is refused at once instead of waiting to time out: on arrival,
and again each time it is at the head and finds no room. The wait is forecast from when the
pool's held slots are expected back (``Forecast``: the k-th release for the k-th in line), since
slots come back in waves; while that is unknown, from the pool's recent admission rate (times
``reach``, the processes whose admissions may serve it: a high-priority waiter that holds
claims on a shared limit is left the next slot freed by any worker). A waiter ``first_served``
(handed each slot freed ahead of lower keys: a protected one, by this queue's order within a
process and by its claims across processes) is never refused on a forecast, only once its
budget is spent: the forecast is the mean time to its k-th release, and refusing on it gave up
on slots that come sooner about as often as later. The budget is what is left when the request
reaches the queue (the gate counts a lower key's from its arrival); one with none left may not
wait, but if it outranks every waiter it first tries once for a slot free now. A waiter not first
served ends its wait one loop lag (``lateness``) before its deadline: the timer that would end it
fires that late, and the refusal is promised by the deadline.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from relaygate.limits.limiter import Admission

Attempt = Callable[[], Awaitable[Admission]]
# Seconds until the k-th slot a request of a priority may use is back (k, priority); None if unknown
Forecast = Callable[[int, int], float | None]
# How many processes' admissions may serve a waiter of a priority
Reach = Callable[[int], int]
# Seconds a timer of this loop is expected to fire late (its smoothed lag)
Lateness = Callable[[], float]


class QueueRefusedError(Exception):
    """Refused by the queue: ``reason`` is one of full, evicted, expected_wait, timeout."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RateMeter:
    """Events per second, decaying exponentially with time constant ``tau`` seconds."""

    __slots__ = ("_last", "_tau", "_value")

    def __init__(self, tau: float = 0.5) -> None:
        self._tau = tau
        self._value = 0.0
        self._last = 0.0

    def tick(self, now: float) -> None:
        self._value = (
            self._value * math.exp(-max(0.0, now - self._last) / self._tau) + 1 / self._tau
        )
        self._last = now

    def rate(self, now: float) -> float:
        return self._value * math.exp(-max(0.0, now - self._last) / self._tau)


class Depth:
    """The waiters of every queue of a process, against one bound."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count >= self.limit


@dataclass(slots=True, eq=False)
class _Waiter:
    priority: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    gone: bool = False
    evicted: bool = False


class AdmissionQueue:
    """One pool's waiters (a model's deployments), in priority classes of FIFO order."""

    def __init__(
        self,
        depth: Depth,
        *,
        poll_seconds: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        forecast: Forecast | None = None,
        reach: Reach | None = None,
        lateness: Lateness | None = None,
    ) -> None:
        self._depth = depth
        self._lateness = lateness
        self._forecast = forecast
        self._reach = reach
        self._poll = poll_seconds
        self._clock = clock
        self._classes: dict[int, deque[_Waiter]] = {}
        self._live: dict[int, int] = {}
        # The sum of ``_live`` (read-only to callers, ``len`` without its call): asked by every
        # request, most often 0.
        self.waiting = 0
        self._priorities: list[int] = []  # ascending
        self._admissions = RateMeter()

    def __len__(self) -> int:
        return self.waiting

    def record_admission(self) -> None:
        """Count one admission into the pool (how fast waiters can expect to move)."""
        self._admissions.tick(self._clock())

    def notify(self) -> None:
        """Capacity was freed: let the head of the queue try again now."""
        head = self._head()
        if head is not None:
            head.wake.set()

    def expected_wait(self, priority: int) -> float | None:
        """Seconds a newcomer of ``priority`` may expect to wait; None while unknown."""
        return self._wait_of(self._ahead(priority) + 1, priority)

    def _ahead(self, priority: int) -> int:
        """Waiters a newcomer of ``priority`` queues behind."""
        if not self.waiting:
            return 0
        return sum(n for p, n in self._live.items() if p >= priority)

    def _wait_of(self, place: int, priority: int) -> float | None:
        """Seconds until the ``place``-th in line may expect a slot; None while unknown."""
        if self._forecast is not None:
            forecast = self._forecast(place, priority)
            if forecast is not None:
                return forecast
        rate = self._admissions.rate(self._clock())
        if rate < 1e-3:
            return None
        if self._reach is not None:
            rate *= self._reach(priority)
        return place / rate

    def refusal_at_once(
        self, priority: int, budget: float, tried: bool = False, first_served: bool = False
    ) -> QueueRefusedError | None:
        """Why ``wait`` refuses a request of ``priority`` with ``budget`` seconds before it even
        queues (no time to wait, or more expected than it has); None when it may wait. A request
        that outranks every waiter and was not ``tried`` yet is not refused before that one try,
        even with its budget spent (it takes a slot free now without waiting); one
        ``first_served`` is not refused on a forecast."""
        retry_after = self.refused_after(priority, budget, tried, first_served)
        return None if retry_after is None else QueueRefusedError("expected_wait", retry_after)

    def refused_after(
        self, priority: int, budget: float, tried: bool = False, first_served: bool = False
    ) -> float | None:
        """The Retry-After of ``refusal_at_once``'s refusal (always an ``expected_wait``), built
        into no exception; None when the request may wait."""
        ahead = self._ahead(priority) if self.waiting else 0
        if not ahead and not tried:
            return None
        expected = self._wait_of(ahead + 1, priority) if not first_served else None
        if budget <= 0 or (expected is not None and expected > budget):
            return expected or self._poll
        return None

    async def wait(
        self,
        priority: int,
        budget: float,
        attempt: Attempt,
        tried: bool = False,
        first_served: bool = False,
    ) -> Admission:
        """Wait for the turn of a request of ``priority`` and admit it with ``attempt``.

        Returns the admission, or the refusal of ``attempt`` when it is not queueable (the
        caller answers it); raises ``QueueRefusedError`` when the request cannot wait. A request
        that outranks every waiter and was not ``tried`` yet tries once before any forecast:
        the forecast knows when held slots come back, not whether one is free now; it does so
        even with no ``budget`` left (spent before it reached the queue), and is then refused
        without waiting. One that is ``first_served`` waits until its deadline, whatever the
        forecast.
        """
        refused = self.refusal_at_once(priority, budget, tried, first_served)
        if refused is not None:
            raise refused
        if budget <= 0:  # it outranks every waiter but may not wait: one try, then refused
            admission = await attempt()
            if admission.admitted or not admission.queueable:
                return admission
            raise QueueRefusedError("expected_wait", self.expected_wait(priority) or self._poll)
        if self._depth.full and not self._evict_below(priority):
            raise QueueRefusedError("full", self.expected_wait(priority) or 1.0)
        waiter = self._push(priority)
        try:
            return await self._serve(waiter, self._clock() + budget, attempt, first_served)
        finally:
            was_head = self._head() is waiter
            self._drop(waiter)
            if was_head:
                self.notify()

    async def _serve(
        self, waiter: _Waiter, deadline: float, attempt: Attempt, first_served: bool
    ) -> Admission:
        while True:
            waiter.wake.clear()
            pause = math.inf
            if self._head() is waiter:
                admission = await attempt()
                if admission.admitted or not admission.queueable:
                    return admission
                pause = min(self._poll, admission.retry_after or self._poll)
            if waiter.evicted:
                raise QueueRefusedError("evicted", self.expected_wait(waiter.priority) or 1.0)
            remaining = deadline - self._clock()
            if not first_served and self._lateness is not None:
                # Its wake-up would come one loop lag late: end its wait that much earlier, so
                # that its refusal lands by its deadline rather than a lag after it.
                remaining -= self._lateness()
            if remaining <= 0:
                raise QueueRefusedError("timeout", self.expected_wait(waiter.priority) or 1.0)
            if pause < math.inf and not first_served:  # no room: can a slot still come in time?
                expected = self._wait_of(1, waiter.priority)
                if expected is not None and expected > remaining:
                    raise QueueRefusedError("expected_wait", expected)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(pause, remaining)):
                    await waiter.wake.wait()
            if waiter.evicted:
                raise QueueRefusedError("evicted", self.expected_wait(waiter.priority) or 1.0)

    def _push(self, priority: int) -> _Waiter:
        waiter = _Waiter(priority)
        queue = self._classes.get(priority)
        if queue is None:
            queue = self._classes[priority] = deque()
            bisect.insort(self._priorities, priority)
        queue.append(waiter)
        self._live[priority] = self._live.get(priority, 0) + 1
        self.waiting += 1
        self._depth.count += 1
        return waiter

    def _drop(self, waiter: _Waiter) -> None:
        if waiter.gone:
            return
        waiter.gone = True
        self._live[waiter.priority] -= 1
        self.waiting -= 1
        self._depth.count -= 1
        queue = self._classes[waiter.priority]
        if len(queue) > 2 * self._live[waiter.priority] + 64:
            self._classes[waiter.priority] = deque(w for w in queue if not w.gone)

    def _head(self) -> _Waiter | None:
        for priority in reversed(self._priorities):
            queue = self._classes[priority]
            while queue and queue[0].gone:
                queue.popleft()
            if queue:
                return queue[0]
        return None

    def _evict_below(self, priority: int) -> bool:
        """Evict the newest waiter of the lowest priority below ``priority``; True if one was."""
        for lower in self._priorities:
            if lower >= priority:
                return False
            queue = self._classes[lower]
            while queue and queue[-1].gone:
                queue.pop()
            if queue:
                victim = queue[-1]
                victim.evicted = True
                self._drop(victim)
                victim.wake.set()
                return True
        return False
