"""Slots kept for high-priority keys: lower keys fill a deployment only up to its limit minus a
reserve sized from the protected keys' recent concurrency, so a surge of low-priority traffic
cannot make a high-priority request wait for a slot (or be refused when it may not wait)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from tests.unit.admission.support import catalog, key, model, request

from relaygate.admission import Admitter, Ticket
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.capacity import PriorityReserve
from relaygate.core.context import RequestContext
from relaygate.core.errors import RateLimitedError
from relaygate.limits import MemoryLimiter
from relaygate.routing.catalog import Catalog, ModelRoute
from relaygate.settings.limits import (
    AdaptiveSettings,
    LimitSettings,
    PriorityReserveSettings,
    QueueSettings,
)

NO_HEADERS: dict[str, str] = {}
LOW = key(id="low", priority=0)
HIGH = key(id="high", priority=10)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def models() -> AsyncIterator[Catalog]:
    cat = catalog(model("wide", {"name": "wide-0", "max_concurrency": 10}), model("free"))
    yield cat
    await cat.close()


def admitter(cat: Catalog, clock: Clock | None = None, **limits: object) -> Admitter:
    settings = LimitSettings.model_validate({"queue": QueueSettings(max_wait_seconds=0), **limits})
    metrics = AdmissionMetrics(CollectorRegistry())
    if clock is None:
        return Admitter(settings, MemoryLimiter(), lookup=cat.get, metrics=metrics)
    return Admitter(settings, MemoryLimiter(), lookup=cat.get, metrics=metrics, clock=clock)


def done(gate: Admitter, ticket: Ticket) -> None:
    assert ticket.capacity is not None
    gate.finish(ticket, RequestContext("req", "openai.chat", "openai"))


async def fill(gate: Admitter, route: ModelRoute) -> list[Ticket]:
    """Admit low-priority requests until one is refused; the tickets admitted."""
    held: list[Ticket] = []
    while True:
        try:
            held.append(await gate.admit(LOW, route, request(route.name), NO_HEADERS))
        except RateLimitedError:
            return held


async def test_high_priority_finds_a_slot_while_low_priority_traffic_fills_the_rest(
    models: Catalog,
) -> None:
    gate = admitter(models)
    route = models.resolve("wide")
    done(gate, await gate.admit(HIGH, route, request("wide"), NO_HEADERS))  # protected traffic seen
    lows = await fill(gate, route)
    # Recent protected peak 1 + margin 2 = 3 of 10 slots kept: low priority stops at 7.
    assert len(lows) == 7
    highs = [await gate.admit(HIGH, route, request("wide"), NO_HEADERS) for _ in range(3)]
    with pytest.raises(RateLimitedError):  # the deployment's own cap still holds for everyone
        await gate.admit(HIGH, route, request("wide"), NO_HEADERS)
    for ticket in highs + lows:
        done(gate, ticket)


async def test_nothing_is_kept_while_no_protected_request_ran(models: Catalog) -> None:
    gate = admitter(models)
    route = models.resolve("wide")
    lows = await fill(gate, route)
    assert len(lows) == 10
    for ticket in lows:
        done(gate, ticket)


async def test_the_reserve_can_be_turned_off(models: Catalog) -> None:
    gate = admitter(models, priority_reserve=PriorityReserveSettings(enabled=False))
    route = models.resolve("wide")
    done(gate, await gate.admit(HIGH, route, request("wide"), NO_HEADERS))
    assert len(await fill(gate, route)) == 10


async def test_the_reserve_follows_the_protected_peak_and_is_capped(models: Catalog) -> None:
    gate = admitter(models)
    route = models.resolve("wide")
    highs = [await gate.admit(HIGH, route, request("wide"), NO_HEADERS) for _ in range(6)]
    for ticket in highs:
        done(gate, ticket)
    # Peak 6 + 2 wants 8 slots, but at most half of the 10 are kept.
    assert len(await fill(gate, route)) == 5


async def test_the_reserve_lapses_two_windows_after_the_last_protected_request(
    models: Catalog,
) -> None:
    clock = Clock()
    gate = admitter(models, clock)
    route = models.resolve("wide")
    done(gate, await gate.admit(HIGH, route, request("wide"), NO_HEADERS))
    clock.now += 1.05  # one window later: the previous window's peak still counts
    lows = await fill(gate, route)
    assert len(lows) == 7
    for ticket in lows:
        done(gate, ticket)
    clock.now += 2.05
    lows = await fill(gate, route)
    assert len(lows) == 10
    for ticket in lows:
        done(gate, ticket)


async def test_the_adaptive_limit_keeps_the_reserve_too(models: Catalog) -> None:
    adaptive = AdaptiveSettings(enabled=True, initial_limit=8, min_limit=1, max_limit=8)
    gate = admitter(models, adaptive=adaptive)
    route = models.resolve("free")  # no cap of its own: only the adaptive limit governs it
    done(gate, await gate.admit(HIGH, route, request("free"), NO_HEADERS))
    lows = await fill(gate, route)
    assert len(lows) == 5  # 8 - (1 + 2)
    high = await gate.admit(HIGH, route, request("free"), NO_HEADERS)
    for ticket in [high, *lows]:
        done(gate, ticket)


def test_more_workers_keep_more_each_since_each_sees_its_share() -> None:
    settings = PriorityReserveSettings()
    one, two = PriorityReserve(settings, workers=1), PriorityReserve(settings, workers=2)
    for reserve in (one, two):
        demand = reserve.demand("d")
        for _ in range(3):
            demand.start(protected=True)
    assert one.kept(one.demand("d"), 100) == 5
    assert two.kept(two.demand("d"), 100) == 8
    assert two.kept(two.demand("d"), 10) == 5


def test_the_reserve_follows_the_protected_arrival_rate_by_littles_law() -> None:
    """At a step up the protected requests' peak in flight shows only after a whole upstream
    latency; their arrival rate shows within a few arrivals."""
    clock = Clock()
    reserve = PriorityReserve(PriorityReserveSettings(), clock=clock)
    demand = reserve.demand("d")
    for _ in range(8):  # 200 protected arrivals per second, none in flight yet
        demand.arrive(protected=True)
        clock.now += 0.005
    assert demand.arrival_rate() == pytest.approx(7 / 0.04)
    assert reserve.kept(demand, 100) == 0  # no hold time known: nothing to go by
    assert reserve.kept(demand, 100, hold=0.05) == 9 + 2  # ceil(175/s * 50 ms) + margin
    assert reserve.kept(demand, 10, hold=0.05) == 5  # still at most half
    half = PriorityReserve(PriorityReserveSettings(), clock=clock).demand("d")
    for _ in range(8):  # an arrival that may go to either of two deployments counts half
        half.arrive(protected=True, weight=0.5)
        clock.now += 0.005
    assert half.arrival_rate() == pytest.approx(3.5 / 0.04)


def test_the_arrival_rate_falls_while_none_come_and_lapses_after_two_windows() -> None:
    clock = Clock()
    reserve = PriorityReserve(PriorityReserveSettings(window_seconds=1.0), clock=clock)
    demand = reserve.demand("d")
    for _ in range(8):
        demand.arrive(protected=True)
        clock.now += 0.01
    busy = demand.arrival_rate()
    clock.now += 0.5
    assert 0 < demand.arrival_rate() < busy / 5
    clock.now += 1.6
    assert demand.arrival_rate() == 0.0
    assert reserve.kept(demand, 100, hold=0.05) == 0


async def test_protected_arrivals_grow_the_reserve_before_their_peak_shows() -> None:
    cat = catalog(model("big", {"name": "big-0", "max_concurrency": 100}))
    clock = Clock()
    gate = admitter(cat, clock)
    route = cat.resolve("big")
    first = await gate.admit(HIGH, route, request("big"), NO_HEADERS)
    clock.now += 0.05
    done(gate, first)  # a slot is held 50 ms
    highs = []
    for _ in range(8):  # then 200 protected requests a second
        highs.append(await gate.admit(HIGH, route, request("big"), NO_HEADERS))
        clock.now += 0.005
    # Their peak in flight is 8 (10 kept), but 175/s for 50 ms will need 9 (11 kept).
    lows = await fill(gate, route)
    assert len(lows) == 100 - 11
    for ticket in highs + lows:
        done(gate, ticket)
    await cat.close()


def test_at_a_step_the_protected_rate_assumes_the_mix_holds() -> None:
    """A few milliseconds into a surge of every priority, the protected keys' own last arrivals
    still say little; their recent share of all arrivals times the rate of all says more."""
    clock = Clock()
    reserve = PriorityReserve(PriorityReserveSettings(), clock=clock)
    demand = reserve.demand("d")
    for i in range(100):  # 200 arrivals a second, one in ten protected
        demand.arrive(protected=i % 10 == 0)
        clock.now += 0.005
    assert demand.arrival_rate() == pytest.approx(20, rel=0.15)
    for _ in range(32):  # then 2,000 a second, none protected yet
        demand.arrive(protected=False)
        clock.now += 0.0005
    share = 10 / 132
    assert demand.arrival_rate() == pytest.approx(share * 31 / 0.016)


def test_lower_keys_ramp_up_while_a_reserve_is_kept() -> None:
    """At a step, lower keys would take every open slot before any rate could show the
    protected keys' new demand: they may add at most the reserve, or half what they held one
    typical hold ago, per hold; and return at once to their peak of the last windows."""
    clock = Clock()
    reserve = PriorityReserve(PriorityReserveSettings(), clock=clock)
    demand = reserve.demand("d")
    assert reserve.open_to_others(demand, 20, hold=0.05) == 20  # nothing kept, no ramp
    clock.now += 0.99
    demand.start(protected=True)
    demand.end(protected=True)  # a protected peak of 1: 3 kept
    for _ in range(4):
        demand.start(protected=False)
    clock.now += 0.005
    # No ramp in the deployment's first window (nothing to ramp from), nor without a hold time.
    assert reserve.open_to_others(demand, 20, hold=0.05) == 17
    clock.now += 0.055
    assert reserve.open_to_others(demand, 20, hold=None) == 17
    assert reserve.open_to_others(demand, 20, hold=0.05) == 4 + 3
    for _ in range(3):
        demand.start(protected=False)
    clock.now += 0.06
    assert reserve.open_to_others(demand, 20, hold=0.05) == 7 + 4
    for _ in range(7):
        demand.end(protected=False)
    clock.now += 0.06
    assert reserve.open_to_others(demand, 20, hold=0.05) == 7  # back to their recent peak


def test_with_several_workers_each_ramps_by_its_share_of_the_reserve() -> None:
    clock = Clock()
    reserve = PriorityReserve(PriorityReserveSettings(), workers=2, clock=clock)
    demand = reserve.demand("d")
    clock.now += 1.0
    demand.start(protected=True)
    demand.end(protected=True)  # a protected peak of 1 here: 1 x 2 workers + 2 = 4 kept
    for _ in range(2):
        demand.start(protected=False)
    clock.now += 0.06
    assert reserve.open_to_others(demand, 20, hold=0.05) == 2 + 2


def test_the_levels_kept_for_the_ramp_stay_bounded_without_a_reserve() -> None:
    clock = Clock()
    reserve = PriorityReserve(PriorityReserveSettings(window_seconds=1.0), clock=clock)
    demand = reserve.demand("d")
    for _ in range(10_000):  # low-priority traffic only: nothing ever asks for a ramp
        demand.start(protected=False)
        clock.now += 0.001
        demand.end(protected=False)
    assert len(demand._levels) <= 2 * 2 * 1000 + 2  # two windows of starts and ends
    assert reserve.open_to_others(demand, 20, hold=0.05) == 20


def test_long_holds_ramp_per_window_not_per_hold() -> None:
    """LLM calls of tens of seconds: a ramp per hold would leave the deployment idle long
    after the reserve is in place, so it goes per window at most."""
    clock = Clock()
    reserve = PriorityReserve(PriorityReserveSettings(window_seconds=1.0), clock=clock)
    demand = reserve.demand("d")
    for _ in range(8):  # eight low slots held for three windows
        demand.start(protected=False)
    clock.now += 3.0
    demand.start(protected=True)
    demand.end(protected=True)  # a protected peak of 1: 3 kept
    assert reserve.open_to_others(demand, 20, hold=30.0) == 8 + 4  # eight one window ago


def test_with_several_workers_the_rate_of_all_follows_a_step_as_fast() -> None:
    """Each of w workers sees one in w arrivals: its rate of all is measured over a share of
    the samples, so a step shows in as many milliseconds as with one worker."""
    clock = Clock()
    reserve = PriorityReserve(PriorityReserveSettings(), workers=2, clock=clock)
    demand = reserve.demand("d")
    for i in range(50):  # this worker's 100 arrivals a second, one in ten protected
        demand.arrive(protected=i % 10 == 0)
        clock.now += 0.01
    for _ in range(16):  # then its 1,000 a second, none protected yet
        demand.arrive(protected=False)
        clock.now += 0.001
    share = 5 / 66
    assert demand.arrival_rate() == pytest.approx(share * 15 / 0.016)


async def test_one_worker_shrinking_the_open_share_shrinks_it_for_every_worker() -> None:
    """Each worker sizes the reserve from the arrivals it sees: at a step one sees it first. The
    smaller open share it asks binds the other worker's asks for a typical hold, so the other's
    lagging estimate cannot let lower keys take the slots the first one keeps."""
    cat = catalog(model("big", {"name": "big-0", "max_concurrency": 40}))
    clock = Clock()
    shared = MemoryLimiter(clock)  # the limit store both workers share
    settings = LimitSettings.model_validate({"queue": QueueSettings(max_wait_seconds=0)})
    a, b = (Admitter(settings, shared, lookup=cat.get, workers=2, clock=clock) for _ in range(2))
    route = cat.resolve("big")
    firsts = [await gate.admit(HIGH, route, request("big"), NO_HEADERS) for gate in (a, b)]
    clock.now += 0.05
    for gate, ticket in zip((a, b), firsts, strict=True):
        done(gate, ticket)  # each worker has held a slot 50 ms: 1 x 2 workers + 2 = 4 kept
    highs = []
    for _ in range(8):  # then worker a sees 200 protected requests a second: 20 kept (the most)
        highs.append(await a.admit(HIGH, route, request("big"), NO_HEADERS))
        clock.now += 0.005
    lows = [await a.admit(LOW, route, request("big"), NO_HEADERS)]  # asks for 40 - 20 open
    # Worker b has seen none of it (it would open 40 - 4 = 36); 8 + 1 of 40 are held.
    lows_b = await fill(b, route)
    assert len(lows_b) == 20 - 1
    for ticket in highs + lows:
        done(a, ticket)
    for ticket in lows_b:
        done(b, ticket)
    await cat.close()


def test_the_open_share_binds_other_workers_for_a_typical_hold_at_most_a_window() -> None:
    reserve = PriorityReserve(PriorityReserveSettings(window_seconds=1.0), workers=2)
    assert reserve.binding_seconds(None) == 0.0  # no hold known yet: nothing binds
    assert reserve.binding_seconds(0.05) == 0.05
    assert reserve.binding_seconds(30.0) == 1.0
    alone = PriorityReserve(PriorityReserveSettings(window_seconds=1.0))
    assert alone.binding_seconds(0.05) == 0.0  # one process: its own latest size is the size
