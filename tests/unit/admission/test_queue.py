"""The admission queue: priority then arrival, bounded depth, deadlines and fast refusals."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.waiting import eventually

from relaygate.admission import AdmissionQueue, QueueRefusedError
from relaygate.admission.queue import Depth, RateMeter
from relaygate.limits import Admission

FULL = Admission(False, 0.0, "d:conc", queueable=True)


class Slots:
    """A stand-in for a limiter: ``free`` slots, taken by ``attempt``."""

    def __init__(self, free: int = 0) -> None:
        self.free = free
        self.order: list[str] = []
        self.attempts = 0

    def attempt_for(self, name: str):  # type: ignore[no-untyped-def]
        async def attempt() -> Admission:
            self.attempts += 1
            if self.free > 0:
                self.free -= 1
                self.order.append(name)
                return Admission(True)
            return FULL

        return attempt


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_served_by_priority_then_arrival() -> None:
    queue = AdmissionQueue(Depth(100), poll_seconds=10)
    slots = Slots()
    names = [("low-1", 0), ("low-2", 0), ("high", 5), ("mid", 1), ("low-3", 0)]
    tasks = []
    for name, priority in names:
        tasks.append(asyncio.create_task(queue.wait(priority, 5.0, slots.attempt_for(name))))
        await settle()
    assert len(queue) == 5
    for _ in names:
        slots.free += 1
        queue.notify()
        await settle()
    await asyncio.gather(*tasks)
    assert slots.order == ["high", "mid", "low-1", "low-2", "low-3"]
    assert len(queue) == 0


async def test_several_free_slots_admit_several_waiters_at_once() -> None:
    queue = AdmissionQueue(Depth(100), poll_seconds=10)
    slots = Slots()
    tasks = [asyncio.create_task(queue.wait(0, 5.0, slots.attempt_for(str(i)))) for i in range(4)]
    await settle()
    slots.free = 3
    queue.notify()
    await settle()
    assert slots.order == ["0", "1", "2"]
    slots.free = 1
    queue.notify()
    await asyncio.gather(*tasks)


async def test_head_polls_for_capacity_freed_elsewhere() -> None:
    queue = AdmissionQueue(Depth(100), poll_seconds=0.01)
    slots = Slots()
    task = asyncio.create_task(queue.wait(0, 5.0, slots.attempt_for("a")))
    await eventually(lambda: slots.attempts >= 1)  # queued, refused once
    slots.free = 1  # freed by another process: nobody calls notify()
    admitted = await asyncio.wait_for(task, 1.0)
    assert admitted.admitted


async def test_wait_is_bounded_by_the_budget() -> None:
    queue = AdmissionQueue(Depth(100), poll_seconds=0.01)
    started = time.perf_counter()
    with pytest.raises(QueueRefusedError) as refused:
        await queue.wait(0, 0.05, Slots().attempt_for("a"))
    assert refused.value.reason == "timeout"
    assert 0.05 <= time.perf_counter() - started < 0.5
    assert len(queue) == 0


async def test_no_budget_is_refused_at_once() -> None:
    queue = AdmissionQueue(Depth(100))
    with pytest.raises(QueueRefusedError) as refused:
        await queue.wait(0, 0.0, Slots().attempt_for("a"))
    assert refused.value.reason == "expected_wait"


async def test_full_queue_refuses_equal_priority_and_evicts_lower() -> None:
    queue = AdmissionQueue(Depth(2), poll_seconds=10)
    slots = Slots()
    low = [asyncio.create_task(queue.wait(0, 5.0, slots.attempt_for(f"low-{i}"))) for i in (1, 2)]
    await settle()
    with pytest.raises(QueueRefusedError) as refused:
        await queue.wait(0, 5.0, slots.attempt_for("low-3"))
    assert refused.value.reason == "full"
    high = asyncio.create_task(queue.wait(3, 5.0, slots.attempt_for("high")))
    await settle()
    with pytest.raises(QueueRefusedError) as evicted:
        await low[1]
    assert evicted.value.reason == "evicted"
    assert len(queue) == 2
    slots.free = 2
    queue.notify()
    await asyncio.gather(high, low[0])
    assert slots.order == ["high", "low-1"]


async def test_expected_wait_beyond_the_budget_is_refused_in_well_under_10_ms() -> None:
    now = [0.0]
    queue = AdmissionQueue(Depth(100), poll_seconds=10, clock=lambda: now[0])
    for _ in range(40):  # 10 admissions per second, over four seconds
        now[0] += 0.1
        queue.record_admission()
    slots = Slots()
    waiting = [
        asyncio.create_task(queue.wait(0, 60.0, slots.attempt_for(str(i)))) for i in range(5)
    ]
    await settle()
    with pytest.raises(QueueRefusedError) as refused:
        await queue.wait(0, 0.3, slots.attempt_for("late"))
    assert refused.value.reason == "expected_wait"  # refused up front, not after waiting
    assert refused.value.retry_after == pytest.approx(0.6, rel=0.1)
    # A higher priority sees nobody ahead of it and may wait.
    assert queue.expected_wait(9) == pytest.approx(0.1, rel=0.1)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert len(queue) == 0


async def test_non_queueable_refusal_is_returned_to_the_caller() -> None:
    queue = AdmissionQueue(Depth(10))

    async def key_limited() -> Admission:
        return Admission(False, 3.0, "k:rpm", queueable=False)

    answer = await queue.wait(0, 1.0, key_limited)
    assert not answer.admitted and answer.refused == "k:rpm"
    assert len(queue) == 0


async def test_cancelled_waiter_leaves_and_the_next_one_moves_up() -> None:
    depth = Depth(10)
    queue = AdmissionQueue(depth, poll_seconds=10)
    slots = Slots()
    first = asyncio.create_task(queue.wait(0, 5.0, slots.attempt_for("first")))
    second = asyncio.create_task(queue.wait(0, 5.0, slots.attempt_for("second")))
    await settle()
    first.cancel()
    await settle()
    assert depth.count == 1
    slots.free = 1
    queue.notify()
    await asyncio.wait_for(second, 1.0)
    assert slots.order == ["second"] and depth.count == 0


def test_rate_meter_follows_the_event_rate() -> None:
    meter = RateMeter(tau=0.5)
    now = 0.0
    for _ in range(2000):
        now += 0.001
        meter.tick(now)
    assert meter.rate(now) == pytest.approx(1000, rel=0.02)
    assert meter.rate(now + 5) < 1


async def test_a_forecast_slot_beyond_the_budget_is_refused_on_arrival() -> None:
    """Slots come back in waves: a fast average rate says nothing about a slot that is 40 ms
    away, so the forecast of the next release decides."""
    now = [0.0]
    places: list[tuple[int, int]] = []

    def forecast(place: int, priority: int) -> float | None:
        places.append((place, priority))
        return 0.004 * place if priority > 0 else 0.04

    queue = AdmissionQueue(Depth(100), poll_seconds=10, clock=lambda: now[0], forecast=forecast)
    for _ in range(1000):  # a thousand admissions per second lately
        now[0] += 0.001
        queue.record_admission()
    slots = Slots()
    with pytest.raises(QueueRefusedError) as refused:  # tried once already, and refused
        await queue.wait(0, 0.01, slots.attempt_for("late"), tried=True)
    assert refused.value.reason == "expected_wait"
    assert refused.value.retry_after == pytest.approx(0.04)
    assert slots.attempts == 0 and len(queue) == 0
    waiting = asyncio.create_task(queue.wait(5, 0.01, slots.attempt_for("high")))
    await settle()
    assert len(queue) == 1  # 4 ms away: it waits
    assert queue.expected_wait(5) == pytest.approx(0.008)  # the second in line
    assert places[-1] == (2, 5)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


async def test_the_head_is_refused_as_soon_as_the_next_slot_cannot_come_in_time() -> None:
    now = [0.0]
    soon = [0.005]
    queue = AdmissionQueue(
        Depth(100), poll_seconds=10, clock=lambda: now[0], forecast=lambda k, p: soon[0]
    )
    slots = Slots()
    waiting = asyncio.create_task(queue.wait(0, 0.01, slots.attempt_for("a")))
    await settle()
    assert slots.attempts == 1 and len(queue) == 1  # refused once, waits for the next slot
    now[0] += 0.004
    soon[0] = 0.05  # that slot went elsewhere: the next is a whole latency away
    queue.notify()
    with pytest.raises(QueueRefusedError) as refused:
        await asyncio.wait_for(waiting, 5.0)
    assert refused.value.reason == "expected_wait"  # not a timeout: refused at once
    assert slots.attempts == 2 and len(queue) == 0


async def test_a_newcomer_ahead_of_every_waiter_tries_before_any_forecast() -> None:
    """A high-priority request arriving while low ones wait may find a slot free now (freed
    while the loop was busy): the forecast of when held slots come back does not refuse it."""
    queue = AdmissionQueue(Depth(100), poll_seconds=10, forecast=lambda k, p: 0.05)
    slots = Slots()
    low = asyncio.create_task(queue.wait(0, 5.0, slots.attempt_for("low")))
    await settle()
    slots.free = 1
    high = await queue.wait(5, 0.01, slots.attempt_for("high"))
    assert high.admitted and slots.order == ["high"]
    with pytest.raises(QueueRefusedError) as refused:  # behind the low one: it may not wait
        await queue.wait(0, 0.01, slots.attempt_for("late"))
    assert refused.value.reason == "expected_wait"
    low.cancel()
    await asyncio.gather(low, return_exceptions=True)


def test_a_waiter_served_by_every_worker_expects_their_admissions_too() -> None:
    """Without a release forecast the wait is the place over the admission rate: for a waiter
    that any of ``reach`` workers' releases may serve (a protected one holding claims), the
    rate of all of them, so it is not refused on this process's share alone."""
    now = [0.0]
    queue = AdmissionQueue(
        Depth(100), clock=lambda: now[0], reach=lambda priority: 2 if priority >= 10 else 1
    )
    for _ in range(40):  # 10 admissions per second here
        now[0] += 0.1
        queue.record_admission()
    assert queue.expected_wait(0) == pytest.approx(0.1, rel=0.1)
    assert queue.expected_wait(10) == pytest.approx(0.05, rel=0.1)
    assert queue.refusal_at_once(10, 0.07, tried=True) is None
    refused = queue.refusal_at_once(0, 0.07, tried=True)
    assert refused is not None and refused.reason == "expected_wait"


async def test_a_claimant_is_not_refused_on_a_forecast_only_at_its_deadline() -> None:
    """A waiter that holds claims is handed every slot freed in any worker in turn; the forecast
    is the mean time to its k-th release, so refusing on it gives up on slots that come sooner
    about as often as later. Only its budget refuses it."""
    now = [0.0]
    queue = AdmissionQueue(
        Depth(100), poll_seconds=10, clock=lambda: now[0], forecast=lambda k, p: 0.05
    )
    slots = Slots()
    with pytest.raises(QueueRefusedError) as refused:  # an ordinary waiter: refused at once
        await queue.wait(10, 0.01, slots.attempt_for("plain"), tried=True)
    assert refused.value.reason == "expected_wait"
    assert queue.refusal_at_once(10, 0.01, tried=True, first_served=True) is None
    assert queue.refusal_at_once(10, 0.0, tried=True, first_served=True) is not None
    waiting = asyncio.create_task(
        queue.wait(10, 0.01, slots.attempt_for("claimant"), tried=True, first_served=True)
    )
    await settle()
    assert slots.attempts == 1 and len(queue) == 1  # tried, found no room, waits
    now[0] += 0.006  # 4 ms left, the next slot forecast 50 ms away: it still waits
    queue.notify()
    await settle()
    assert slots.attempts == 2 and not waiting.done()
    slots.free = 1
    queue.notify()
    admitted = await asyncio.wait_for(waiting, 5.0)
    assert admitted.admitted and slots.order == ["claimant"]
    now[0] += 0.005  # past its deadline: a claimant that finds no room then is refused
    late = asyncio.create_task(
        queue.wait(10, 0.01, slots.attempt_for("late"), tried=True, first_served=True)
    )
    await settle()
    now[0] += 0.011
    queue.notify()
    with pytest.raises(QueueRefusedError) as timed_out:
        await asyncio.wait_for(late, 5.0)
    assert timed_out.value.reason == "timeout"


async def test_a_newcomer_ahead_of_every_waiter_tries_once_even_with_its_budget_spent() -> None:
    """A request whose budget was spent before it reached the queue (it counts from arrival)
    may not wait, but one that outranks every waiter still takes a slot free now; without one
    it is refused at once, never queued."""
    queue = AdmissionQueue(Depth(100), poll_seconds=10)
    slots = Slots()
    low = asyncio.create_task(queue.wait(0, 5.0, slots.attempt_for("low")))
    await settle()
    with pytest.raises(QueueRefusedError) as refused:
        await queue.wait(5, 0.0, slots.attempt_for("high-1"))
    assert refused.value.reason == "expected_wait" and len(queue) == 1
    assert slots.attempts == 2  # the low one's, then the high one's single try
    slots.free = 1  # freed while the loop was busy: the low head has not tried again yet
    admitted = await queue.wait(5, 0.0, slots.attempt_for("high-2"))
    assert admitted.admitted and slots.order == ["high-2"]
    slots.free = 1
    with pytest.raises(QueueRefusedError):  # behind the low one: no try, no wait
        await queue.wait(0, 0.0, slots.attempt_for("late"))
    assert slots.attempts == 3
    low.cancel()
    await asyncio.gather(low, return_exceptions=True)


async def test_a_waiter_ends_its_wait_one_loop_lag_before_its_deadline() -> None:
    """The timer that ends a wait fires as late as the loop lags: a waiter that is not first
    served ends its wait that much before its deadline, so its refusal lands by the deadline.
    A first-served one waits to its deadline (its budget is for its success)."""
    now = [0.0]
    queue = AdmissionQueue(
        Depth(100), poll_seconds=10, clock=lambda: now[0], lateness=lambda: 0.004
    )
    slots = Slots()
    plain = asyncio.create_task(queue.wait(0, 0.01, slots.attempt_for("plain"), tried=True))
    claimant = asyncio.create_task(
        queue.wait(0, 0.01, slots.attempt_for("claimant"), tried=True, first_served=True)
    )
    await settle()
    assert len(queue) == 2 and slots.attempts == 1
    now[0] += 0.007  # 3 ms to the deadlines, less than the loop's 4 ms lag
    queue.notify()
    with pytest.raises(QueueRefusedError) as refused:
        await asyncio.wait_for(plain, 5.0)
    assert refused.value.reason == "timeout"
    await settle()
    assert slots.attempts == 3 and not claimant.done()  # tried as the new head, still waits
    slots.free = 1
    queue.notify()
    assert (await asyncio.wait_for(claimant, 5.0)).admitted
