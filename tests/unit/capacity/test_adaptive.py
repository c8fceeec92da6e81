"""The gradient concurrency limit: grows while the upstream keeps its latency, shrinks when
latency climbs or the upstream answers with overload, and stays within its bounds."""

from __future__ import annotations

from tests.unit.admission.clock import FakeClock

from relaygate.capacity import AdaptiveLimits, GradientLimit
from relaygate.settings.limits import AdaptiveSettings

SETTINGS = AdaptiveSettings(enabled=True, initial_limit=20, min_limit=2, max_limit=200)


def busy_window(limit: GradientLimit, clock: FakeClock, latency: float, use: float = 1.0) -> None:
    """One 100 ms window with ``use`` of the limit in flight and 10 calls of ``latency``."""
    while limit.in_flight < int(limit.limit * use):
        assert limit.try_acquire()
    for _ in range(10):
        clock.advance(0.011)
        limit.sample(latency, overloaded=False)
    while limit.in_flight:
        limit.release()


def test_slots_are_bounded_by_the_limit() -> None:
    limit = GradientLimit("d", SETTINGS, 200, FakeClock())
    assert all(limit.try_acquire() for _ in range(20))
    assert not limit.try_acquire()
    limit.release()
    assert limit.try_acquire()


def test_grows_while_used_and_latency_holds() -> None:
    clock = FakeClock()
    limit = GradientLimit("d", SETTINGS, 200, clock)
    for _ in range(200):
        busy_window(limit, clock, 0.05)
    assert limit.limit == 200


def test_does_not_grow_when_the_limit_is_not_used() -> None:
    clock = FakeClock()
    limit = GradientLimit("d", SETTINGS, 200, clock)
    for _ in range(50):
        busy_window(limit, clock, 0.05, use=0.2)
    assert limit.limit == 20


def test_shrinks_when_latency_climbs() -> None:
    clock = FakeClock()
    limit = GradientLimit("d", SETTINGS, 200, clock)
    for _ in range(60):
        busy_window(limit, clock, 0.05)
    grown = limit.limit
    for _ in range(30):
        busy_window(limit, clock, 0.5)
    assert limit.limit < grown / 2
    assert limit.limit >= SETTINGS.min_limit


def test_overload_answers_cut_the_limit_once_per_window() -> None:
    clock = FakeClock()
    changes: list[tuple[str, int]] = []
    limit = GradientLimit("d", SETTINGS, 200, clock, lambda name, n: changes.append((name, n)))
    for _ in range(5):
        limit.sample(0.05, overloaded=True)  # all inside the first window
    clock.advance(0.11)
    limit.sample(0.05, overloaded=True)
    assert limit.limit == 18  # 20 * 0.9, not 20 * 0.9 ** 6
    assert changes == [("d", 18)]
    for _ in range(100):
        clock.advance(0.11)
        limit.sample(0.05, overloaded=True)
    assert limit.limit == SETTINGS.min_limit


def test_deployment_cap_bounds_the_limit() -> None:
    clock = FakeClock()
    limits = AdaptiveLimits(SETTINGS, clock)
    capped = limits.get("dep", cap=8)
    assert capped.limit == 8
    for _ in range(50):
        busy_window(capped, clock, 0.05)
    assert capped.limit == 8
    assert limits.get("dep", cap=8) is capped
    assert limits.find("other") is None
    assert limits.get("other", cap=None).limit == 20


def test_long_term_latency_catches_up_when_latency_falls() -> None:
    clock = FakeClock()
    limit = GradientLimit("d", SETTINGS, 200, clock)
    for _ in range(20):
        busy_window(limit, clock, 1.0)
    for _ in range(200):
        busy_window(limit, clock, 0.05)
    assert limit.long_latency is not None and limit.long_latency < 0.2
    assert limit.limit > 20


def test_latency_that_is_this_processs_own_loop_lag_does_not_shrink_the_limit() -> None:
    clock = FakeClock()
    lag = [0.0]
    limits = AdaptiveLimits(SETTINGS, clock, loop_lag=lambda: lag[0])
    limit = limits.get("d", cap=None)
    for _ in range(60):
        busy_window(limit, clock, 0.05)
    grown = limit.limit
    lag[0] = 0.040  # the gateway's CPU is saturated: the latency climbs with it
    for _ in range(30):
        busy_window(limit, clock, 0.5)
    assert limit.limit >= grown
    lag[0] = 0.001  # the loop recovers, the upstream really slowed: the limit follows it
    for _ in range(30):
        busy_window(limit, clock, 0.5)
    assert limit.limit < grown / 2


def test_overload_answers_still_cut_the_limit_while_the_loop_lags() -> None:
    clock = FakeClock()
    limit = GradientLimit("d", SETTINGS, 200, clock, loop_lag=lambda: 1.0)
    for _ in range(10):
        clock.advance(0.11)
        limit.sample(0.05, overloaded=True)
    assert limit.limit < 20


def test_a_short_lag_spike_inside_a_window_still_freezes_it() -> None:
    clock = FakeClock()
    lags = iter([0.0] * 10 + [0.030] + [0.0] * 1000)
    limit = GradientLimit("d", SETTINGS, 200, clock, loop_lag=lambda: next(lags))
    busy_window(limit, clock, 0.05)
    before = limit.limit
    busy_window(limit, clock, 0.5)  # the window's first sample sees the 30 ms spike
    assert limit.limit >= before


def test_the_freeze_can_be_turned_off() -> None:
    clock = FakeClock()
    settings = SETTINGS.model_copy(update={"freeze_on_loop_lag_ms": None})
    limit = GradientLimit("d", settings, 200, clock, loop_lag=lambda: 1.0)
    for _ in range(60):
        busy_window(limit, clock, 0.05)
    grown = limit.limit
    for _ in range(30):
        busy_window(limit, clock, 0.5)
    assert limit.limit < grown / 2
