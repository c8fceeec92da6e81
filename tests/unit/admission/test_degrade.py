"""Degradation levels: entered at once on high latency or errors, left one level at a time only
after holding and with signals well below the thresholds (hysteresis)."""

from __future__ import annotations

import logging

import pytest
from tests.unit.admission.clock import FakeClock

from relaygate.admission import DegradeController, Level
from relaygate.admission.degrade import Signals
from relaygate.settings.limits import DegradeSettings, LevelActions, LevelThresholds

SETTINGS = DegradeSettings(
    enabled=True,
    window_seconds=5,
    min_samples=10,
    reduced=LevelThresholds(latency_p90_ms=1000, error_rate=0.1),
    degraded=LevelThresholds(latency_p90_ms=4000, error_rate=0.4),
    recover_factor=0.5,
    min_hold_seconds=10,
    reduced_actions=LevelActions(fallback_models={"big": "small"}),
    degraded_actions=LevelActions(serve_stale=True, shed_below_priority=2),
)


def feed(ctrl: DegradeController, clock: FakeClock, *, errors: float, latency: float) -> None:
    """One second of 20 calls, ``errors`` of them failed, each taking ``latency`` seconds."""
    failing = round(20 * errors)
    for i in range(20):
        ctrl.record(latency, error=i < failing)
    clock.advance(1.0)
    ctrl.current()


def make(clock: FakeClock) -> tuple[DegradeController, list[tuple[Level, Level]]]:
    changes: list[tuple[Level, Level]] = []

    def hook(model: str, before: Level, after: Level, signals: Signals) -> None:
        assert model == "big"
        changes.append((before, after))

    return DegradeController("big", SETTINGS, clock, hook), changes


def test_stays_normal_below_thresholds_and_without_enough_calls() -> None:
    clock = FakeClock()
    ctrl, changes = make(clock)
    for _ in range(3):
        ctrl.record(30.0, error=True)  # awful, but only 3 calls
    clock.advance(1)
    assert ctrl.current() is Level.NORMAL
    clock.advance(SETTINGS.window_seconds)  # those calls leave the window
    for _ in range(10):
        feed(ctrl, clock, errors=0.05, latency=0.2)
    assert ctrl.current() is Level.NORMAL and changes == []
    assert ctrl.actions() is None


def test_errors_raise_the_level_at_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    ctrl, changes = make(clock)
    with caplog.at_level(logging.WARNING, logger="relaygate.admission"):
        feed(ctrl, clock, errors=0.15, latency=0.2)
    assert ctrl.current() is Level.REDUCED
    assert ctrl.actions() == SETTINGS.reduced_actions
    assert any(r.getMessage() == "degradation level changed" for r in caplog.records)
    for _ in range(2):
        feed(ctrl, clock, errors=0.6, latency=0.2)
    assert ctrl.current() is Level.DEGRADED
    assert changes == [(Level.NORMAL, Level.REDUCED), (Level.REDUCED, Level.DEGRADED)]


def test_latency_raises_the_level() -> None:
    clock = FakeClock()
    ctrl, _ = make(clock)
    feed(ctrl, clock, errors=0.0, latency=6.0)
    assert ctrl.current() is Level.DEGRADED
    signals = ctrl.signals()
    assert signals.p90_ms >= 4000 and signals.error_rate == 0


def test_recovery_waits_for_the_hold_and_steps_down_one_level_at_a_time() -> None:
    clock = FakeClock()
    ctrl, changes = make(clock)
    feed(ctrl, clock, errors=0.5, latency=0.1)
    assert ctrl.current() is Level.DEGRADED
    for _ in range(9):  # healthy again, but the level holds for 10 s
        feed(ctrl, clock, errors=0.0, latency=0.1)
    assert ctrl.current() is Level.DEGRADED
    feed(ctrl, clock, errors=0.0, latency=0.1)
    assert ctrl.current() is Level.REDUCED
    for _ in range(9):
        feed(ctrl, clock, errors=0.0, latency=0.1)
    assert ctrl.current() is Level.REDUCED
    for _ in range(2):
        feed(ctrl, clock, errors=0.0, latency=0.1)
    assert ctrl.current() is Level.NORMAL
    assert [after for _, after in changes] == [Level.DEGRADED, Level.REDUCED, Level.NORMAL]


def test_hysteresis_holds_the_level_between_recovery_and_entry() -> None:
    clock = FakeClock()
    ctrl, changes = make(clock)
    feed(ctrl, clock, errors=0.15, latency=0.1)
    for _ in range(30):  # 7%: below the 10% entry, above the 5% recovery threshold
        feed(ctrl, clock, errors=0.07, latency=0.1)
    assert ctrl.current() is Level.REDUCED
    assert changes == [(Level.NORMAL, Level.REDUCED)]


def test_silence_after_trouble_lets_the_level_recover() -> None:
    clock = FakeClock()
    ctrl, _ = make(clock)
    feed(ctrl, clock, errors=0.2, latency=0.1)
    clock.advance(11)
    assert ctrl.current() is Level.NORMAL
