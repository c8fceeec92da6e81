"""When held slots come back: the k-th release is forecast from the k-th earliest start plus
the typical hold, per priority class, so the queue can refuse at once a request no slot will
reach in time instead of letting it wait out its budget."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.unit.admission.clock import FakeClock
from tests.unit.admission.support import catalog, model

from relaygate.capacity import AdaptiveLimits, PriorityReserve, Slot, SlotSource, pool_of
from relaygate.capacity.releases import Releases, kth_release
from relaygate.limits import MemoryLimiter
from relaygate.limits.releaser import Releaser
from relaygate.routing.catalog import Catalog
from relaygate.settings.limits import AdaptiveSettings, PriorityReserveSettings


def test_the_kth_release_is_the_kth_earliest_start_plus_the_typical_hold() -> None:
    clock = FakeClock(0.0)
    releases = Releases(clock)
    first = releases.start()
    assert kth_release([releases.due()], 1, clock()) is None  # no hold time known yet
    clock.advance(0.05)
    releases.end(first)  # one hold of 50 ms
    holds = []
    for _ in range(3):  # three slots taken 10 ms apart
        holds.append(releases.start())
        clock.advance(0.01)
    # Taken at 50, 60, 70 ms; now 80 ms: back at 100, 110, 120 ms.
    assert kth_release([releases.due()], 1, clock()) == pytest.approx(0.02)
    assert kth_release([releases.due()], 3, clock()) == pytest.approx(0.04)
    assert kth_release([releases.due()], 4, clock()) is None  # only three are held
    assert kth_release([releases.due(skip=1)], 1, clock()) == pytest.approx(0.03)
    clock.advance(0.1)
    assert kth_release([releases.due()], 1, clock()) == 0.0  # overdue
    releases.end(holds[1])  # out of order, after 120 ms: the typical hold moves towards it
    assert releases.live == 2
    assert releases.typical == pytest.approx(0.05 + 0.1 * (0.12 - 0.05))


def test_releases_of_several_deployments_merge_in_time_order() -> None:
    clock = FakeClock(0.0)
    a, b = Releases(clock), Releases(clock)
    for releases in (a, b):
        releases.end(releases.start())  # a hold of 0 s: due as soon as taken
    a.start()
    clock.advance(0.01)
    b.start()
    clock.advance(0.01)
    a.start()
    due = [kth_release([a.due(), b.due()], k, 0.0) for k in (1, 2, 3, 4)]
    assert due == [0.0, pytest.approx(0.01), pytest.approx(0.02), None]


@pytest.fixture
async def models() -> AsyncIterator[Catalog]:
    cat = catalog(model("wide", {"name": "wide-0", "max_concurrency": 10}))
    yield cat
    await cat.close()


def source(clock: FakeClock, workers: int = 1) -> SlotSource:
    limiter = MemoryLimiter()
    reserve = PriorityReserve(PriorityReserveSettings(), workers, clock)
    adaptive = AdaptiveLimits(AdaptiveSettings(), clock)
    return SlotSource(limiter, adaptive, Releaser(limiter), lambda: None, 0.02, reserve, clock)


async def test_a_low_priority_forecast_counts_only_the_slots_it_may_take(models: Catalog) -> None:
    clock = FakeClock(0.0)
    slots = source(clock)
    route = models.resolve("wide")
    pool = pool_of(route, models.get, adaptive=False)
    assert pool is not None
    dep = route.deployments[0]

    async def take(priority: int) -> Slot:
        got = await slots.take(dep, 0, priority)
        assert isinstance(got, Slot)
        return got

    warm_low, first_high = await take(0), await take(10)
    lows = [warm_low]
    for _ in range(6):  # 7 low slots: 3 of 10 kept for a protected peak of 1, 7 open
        clock.advance(0.001)
        lows.append(await take(0))
    later_highs = [await take(10), await take(10)]  # a protected peak of 3 keeps 5 of 10
    clock.advance(0.044)  # 50 ms after the first two were taken, they come back
    warm_low.release(None)
    first_high.release(None)
    lows.remove(warm_low)
    # A protected request waits out its budget: a slot freed anywhere may reach it.
    assert slots.forecast(pool, 1, priority=10) is None
    # Six low slots, taken at 1..6 ms, back at 51..56 ms, where the reserve leaves five: the
    # second to come back is the first that opens one for another low request, and the
    # protected ones (back at 56 ms) never do.
    assert slots.forecast(pool, 1, priority=0) == pytest.approx(0.002)
    assert slots.forecast(pool, 5, priority=0) == pytest.approx(0.006)
    assert slots.forecast(pool, 6, priority=0) is None
    for slot in [*lows, *later_highs]:
        slot.release(None)


def test_a_forecast_allows_for_the_holds_spread() -> None:
    """A forecast right only on average would let the waiters it puts just inside their
    budget time out half the time: twice the holds' deviation is added, as TCP bounds a
    round trip."""
    clock = FakeClock(0.0)
    releases = Releases(clock)
    for seconds in (0.04, 0.06):
        hold = releases.start()
        clock.advance(seconds)
        releases.end(hold)
    assert releases.typical == pytest.approx(0.042)
    assert releases.deviation == pytest.approx(0.002)
    releases.start()
    assert kth_release([releases.due()], 1, clock()) == pytest.approx(0.042 + 2 * 0.002)


async def test_with_several_workers_a_low_request_counts_on_one_release_in_w(
    models: Catalog,
) -> None:
    """Every worker's newcomers compete for the slots that come back (the shared limiter has no
    queue): with two workers, the k-th low request in line here counts on this process's
    (2k)-th release."""
    clock = FakeClock(0.0)
    slots = source(clock, workers=2)
    route = models.resolve("wide")
    pool = pool_of(route, models.get, adaptive=False)
    assert pool is not None
    dep = route.deployments[0]
    held = []
    for _ in range(4):  # four low slots, taken 1 ms apart
        got = await slots.take(dep, 0, 0)
        assert isinstance(got, Slot)
        held.append(got)
        clock.advance(0.001)
    held.pop(0).release(None)  # back after 4 ms: the typical hold; the others due at 1-3 ms
    assert slots.forecast(pool, 1, priority=0) == pytest.approx(0.002)
    assert slots.forecast(pool, 2, priority=0) is None  # only three are held here
    assert slots.forecast(pool, 1, priority=10) is None
    for slot in held:
        slot.release(None)
