from __future__ import annotations

import pytest

from relaygate.routing.breaker import Admission, BreakerState, CircuitBreaker, FailureWindow
from relaygate.settings.routing import BreakerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Transitions = list[tuple[str, BreakerState, BreakerState]]


def make(clock: Clock, **overrides: object) -> tuple[CircuitBreaker, Transitions]:
    values: dict[str, object] = {
        "consecutive_failures": 3,
        "error_rate": 0.5,
        "window_seconds": 10.0,
        "min_requests": 10,
        "cooldown_seconds": 5.0,
    }
    values.update(overrides)
    seen: Transitions = []
    breaker = CircuitBreaker(
        "dep-a",
        BreakerSettings.model_validate(values),
        clock,
        lambda name, old, new: seen.append((name, old, new)),
    )
    return breaker, seen


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        admission = breaker.admit()
        assert admission is not Admission.REFUSED
        breaker.failure(admission)


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        admission = breaker.admit()
        assert admission is not Admission.REFUSED
        breaker.success(admission)


def test_opens_after_consecutive_failures_and_refuses_until_cooldown() -> None:
    clock = Clock()
    breaker, seen = make(clock)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert seen == [("dep-a", BreakerState.CLOSED, BreakerState.OPEN)]
    assert breaker.admit() is Admission.REFUSED
    clock.now += 4.9
    assert breaker.admit() is Admission.REFUSED
    assert breaker.retry_in() == pytest.approx(0.1)


def test_success_resets_the_consecutive_count() -> None:
    breaker, _ = make(Clock())
    fail(breaker, 2)
    succeed(breaker)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_exactly_one_probe_and_its_success_closes() -> None:
    clock = Clock()
    breaker, seen = make(clock)
    fail(breaker, 3)
    clock.now += 5.0
    probe = breaker.admit()
    assert probe is Admission.PROBE
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit() is Admission.REFUSED
    assert breaker.admit() is Admission.REFUSED
    breaker.success(probe)
    assert breaker.state is BreakerState.CLOSED
    assert [new for _, _, new in seen] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]
    # Closed again with fresh counts: two failures do not reopen it.
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker, _ = make(clock)
    fail(breaker, 3)
    clock.now += 6.0
    probe = breaker.admit()
    breaker.failure(probe)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(5.0)
    clock.now += 4.0
    assert breaker.admit() is Admission.REFUSED
    clock.now += 1.0
    assert breaker.admit() is Admission.PROBE


def test_a_released_probe_frees_the_slot_for_another() -> None:
    clock = Clock()
    breaker, _ = make(clock)
    fail(breaker, 3)
    clock.now += 5.0
    probe = breaker.admit()
    breaker.release(probe)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit() is Admission.PROBE


def test_late_outcomes_of_earlier_attempts_do_not_decide() -> None:
    clock = Clock()
    breaker, _ = make(clock)
    early = breaker.admit()
    fail(breaker, 3)
    breaker.success(early)
    assert breaker.state is BreakerState.OPEN
    clock.now += 5.0
    probe = breaker.admit()
    breaker.success(early)
    breaker.failure(early)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.success(probe)
    assert breaker.state is BreakerState.CLOSED


def test_error_rate_opens_only_with_enough_requests_in_the_window() -> None:
    clock = Clock()
    breaker, _ = make(clock, consecutive_failures=100)
    for _ in range(4):
        fail(breaker)
        succeed(breaker)
    assert breaker.state is BreakerState.CLOSED  # 4 of 8: under min_requests
    fail(breaker)
    assert breaker.state is BreakerState.CLOSED  # 5 of 9
    succeed(breaker)
    assert breaker.state is BreakerState.CLOSED  # success never opens
    fail(breaker)
    assert breaker.state is BreakerState.OPEN  # 6 of 11 >= 50 %


def test_error_rate_below_threshold_stays_closed() -> None:
    clock = Clock()
    breaker, _ = make(clock, consecutive_failures=100, error_rate=0.4)
    for _ in range(50):
        fail(breaker)
        succeed(breaker, 3)
    assert breaker.state is BreakerState.CLOSED  # 25 %


def test_old_failures_leave_the_window() -> None:
    clock = Clock()
    breaker, _ = make(clock, consecutive_failures=100, min_requests=4)
    fail(breaker, 3)
    clock.now += 11.0
    succeed(breaker, 3)
    fail(breaker)
    assert breaker.state is BreakerState.CLOSED  # 1 of 4 in the window


def test_disabled_breaker_never_refuses() -> None:
    breaker, seen = make(Clock(), enabled=False)
    fail(breaker, 50)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit() is Admission.NORMAL
    assert seen == []


def test_failure_window_counts() -> None:
    window = FailureWindow(10.0)
    window.add(0.5, failed=True)
    window.add(5.0, failed=False)
    assert window.counts(9.0) == (2, 1)
    assert window.counts(10.5) == (1, 0)
    assert window.counts(30.0) == (0, 0)
    window.add(30.0, failed=True)
    window.clear()
    assert window.counts(30.0) == (0, 0)


def test_a_panic_attempt_closes_an_open_breaker_on_success_only() -> None:
    clock = Clock()
    breaker, _ = make(clock)
    fail(breaker, 3)
    assert breaker.admit() is Admission.REFUSED
    breaker.failure(Admission.PANIC)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(5.0)  # a failure in panic does not extend it
    breaker.success(Admission.PANIC)
    assert breaker.state is BreakerState.CLOSED
