"""The loop-lag monitor: its smoothed lag from a hand-driven clock, and the shedding it implies
(priority order, hysteresis, the configured Retry-After, disabled means never)."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.admission.clock import FakeClock

from relaygate.admission import LagMonitor
from relaygate.settings.limits import OverloadSettings, ShedStep

STEPS = [ShedStep(below_priority=1, lag_ms=50), ShedStep(below_priority=10, lag_ms=200)]
SETTINGS = OverloadSettings(smoothing=1.0, recover_factor=0.5, retry_after_seconds=2, shed=STEPS)


def test_nothing_is_shed_without_lag() -> None:
    monitor = LagMonitor(SETTINGS)
    monitor.record(0.001)
    assert not monitor.shedding
    assert monitor.should_shed(0) is None


def test_low_priority_is_shed_first_and_higher_priorities_only_at_higher_lag() -> None:
    monitor = LagMonitor(SETTINGS)
    monitor.record(0.060)
    assert monitor.shedding
    assert monitor.should_shed(0) == 2
    assert monitor.should_shed(-5) == 2
    assert monitor.should_shed(1) is None
    monitor.record(0.250)
    assert monitor.should_shed(1) == 2
    assert monitor.should_shed(9) == 2
    assert monitor.should_shed(10) is None
    assert monitor.should_shed(100) is None


def test_each_step_releases_only_below_its_recovery_level() -> None:
    monitor = LagMonitor(SETTINGS)
    monitor.record(0.250)
    monitor.record(0.150)  # under 200 ms but above 100 ms: both steps hold
    assert monitor.should_shed(5) == 2
    monitor.record(0.090)  # the upper step releases, the lower one holds down to 25 ms
    assert monitor.should_shed(5) is None
    assert monitor.should_shed(0) == 2
    monitor.record(0.030)
    assert monitor.should_shed(0) == 2
    monitor.record(0.024)
    assert not monitor.shedding
    monitor.record(0.049)  # below the engage level: stays off
    assert not monitor.shedding


def test_the_lag_is_an_ewma() -> None:
    monitor = LagMonitor(OverloadSettings(smoothing=0.25, shed=STEPS))
    monitor.record(0.100)
    assert monitor.lag == pytest.approx(0.025)
    assert not monitor.shedding
    monitor.record(0.100)
    monitor.record(0.100)
    assert monitor.lag == pytest.approx(0.100 * (1 - 0.75**3))
    assert monitor.shedding  # 57.8 ms


def test_a_zero_threshold_sheds_from_the_start() -> None:
    zero = OverloadSettings(shed=[ShedStep(below_priority=5, lag_ms=0)])
    monitor = LagMonitor(zero)
    assert monitor.should_shed(4) == zero.retry_after_seconds
    assert monitor.should_shed(5) is None


def test_disabled_never_sheds_and_starts_no_task() -> None:
    off = OverloadSettings(enabled=False, shed=[ShedStep(below_priority=5, lag_ms=0)])
    monitor = LagMonitor(off)
    monitor.record(10.0)
    assert monitor.should_shed(0) is None
    monitor.start()  # no running loop needed: nothing is started


def test_sheds_are_reported_to_the_hook() -> None:
    reasons: list[str] = []
    monitor = LagMonitor(SETTINGS, on_shed=reasons.append)
    monitor.record(0.060)
    monitor.should_shed(0)
    monitor.should_shed(5)
    assert reasons == ["loop_lag"]


async def _ticking(
    settings: OverloadSettings, overshoot: list[float]
) -> tuple[LagMonitor, list[float], list[float]]:
    """Run a monitor's task with a fake sleep that runs each timer ``overshoot`` late: the
    monitor, the periods it slept and the lags it recorded."""
    clock = FakeClock()
    monitor = LagMonitor(settings, clock=clock)
    ticks: list[float] = []
    seen: list[float] = []
    done = asyncio.Event()

    async def sleep(seconds: float) -> None:
        ticks.append(seconds)
        if len(ticks) > len(overshoot):
            done.set()
            await asyncio.Event().wait()
        clock.advance(seconds + overshoot[len(ticks) - 1])

    record = monitor.record

    def spy(lag: float, ticks: int = 1) -> None:
        seen.append(lag)
        record(lag, ticks)

    monitor._sleep = sleep
    monitor.record = spy  # type: ignore[method-assign,assignment]
    monitor.start()
    await asyncio.wait_for(done.wait(), 1)
    await monitor.stop()
    await monitor.stop()
    return monitor, ticks, seen


async def test_the_ticking_task_measures_how_late_the_timer_runs() -> None:
    overshoot = [0.0, 0.080, 0.080, 0.080, 0.0]
    settings = OverloadSettings(tick_ms=10, smoothing=0.5, shed=STEPS)
    monitor, ticks, seen = await _ticking(settings, overshoot)
    assert seen == pytest.approx(overshoot)
    # Calm: one sample per five ticks; then, the lag over 12.5 ms, tick by tick.
    assert ticks[:3] == pytest.approx([0.050, 0.050, 0.010])
    assert monitor.lag == pytest.approx(0.035)  # 0 -> 40 -> 60 -> 70 -> 35 ms
    assert monitor.shedding  # engaged at 60 ms, holds above 25 ms


async def test_a_calm_loop_is_woken_once_per_five_ticks_until_the_lag_nears_a_level() -> None:
    """100 wake-ups a second at a 10 ms tick were a fixed cost of a lightly loaded process."""
    # Calm while the average is under what a steady lag of 3/4 of the lowest level (50 ms) reads
    # when sampled calmly (12.3 ms); 80 ms lag brings it over (20 ms) and the ticks back to
    # 10 ms until it is under it again.
    overshoot = [0.0, 0.002, 0.080, 0.0, 0.0, 0.0]
    settings = OverloadSettings(tick_ms=10, smoothing=0.25, shed=STEPS)
    monitor, ticks, _ = await _ticking(settings, overshoot)
    assert ticks == pytest.approx([0.05, 0.05, 0.05, 0.01, 0.01, 0.05, 0.05])
    assert not monitor.shedding


def test_a_stall_in_a_calm_period_weighs_as_one_late_tick() -> None:
    """One 70 ms stall (the process descheduled) is one late tick at a 10 ms period; the calm
    period's sample must not weigh it five times (it shed a busy machine's requests)."""
    monitor = LagMonitor(OverloadSettings(smoothing=0.25, shed=STEPS))
    monitor.record(0.070, ticks=5)
    assert monitor.lag == pytest.approx(0.0175)
    assert not monitor.shedding
    monitor.record(0.0, ticks=5)  # the calm ticks after it decay the average as five ticks
    assert monitor.lag == pytest.approx(0.0175 * 0.75**5)


def test_a_lag_the_adaptive_limits_act_on_is_watched_tick_by_tick_before_it_is_reached() -> None:
    monitor = LagMonitor(OverloadSettings(smoothing=1.0, shed=STEPS), watch_lag_ms=20)
    monitor.record(0.014)
    assert monitor.calm
    monitor.record(0.016)  # over 3/4 of 20 ms, far under the 50 ms shed step
    assert not monitor.calm


@pytest.mark.parametrize("smoothing", [0.05, 0.25, 0.5, 1.0])
def test_a_steady_lag_near_a_level_is_followed_tick_by_tick(smoothing: float) -> None:
    """Calm samples count the ticks between as on time, so they read a steady lag (late on every
    tick) low; one of 80% of the lowest level must still bring back the fast ticks."""
    monitor = LagMonitor(OverloadSettings(smoothing=smoothing, shed=STEPS))
    for _ in range(200):
        if not monitor.calm:
            break
        monitor.record(0.040, ticks=5)
    assert not monitor.calm
    for _ in range(200):
        monitor.record(0.040)
    assert monitor.lag == pytest.approx(0.040, rel=1e-3) and not monitor.shedding
