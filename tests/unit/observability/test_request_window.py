"""The request window the in-process alert rules read: O(1) per request, exact counts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaygate.observability.window import RequestWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counts_errors_and_p99_over_the_asked_seconds() -> None:
    clock = Clock()
    window = RequestWindow(10, clock)
    for _ in range(98):
        window.record(0.010, 200)
    window.record(0.500, 502)
    window.record(0.500, 503)
    stats = window.stats(10)
    assert (stats.requests, stats.errors) == (100, 2)
    assert stats.error_rate == pytest.approx(0.02)
    # p99 of 98 fast and 2 slow requests is slow; the bucket bound is within 25% above.
    assert 500 <= stats.p99_ms <= 625
    assert window.stats(10).p99_ms == stats.p99_ms


def test_client_errors_are_not_errors() -> None:
    window = RequestWindow(5, Clock())
    window.record(0.01, 400)
    window.record(0.01, 429)
    assert window.stats(5).errors == 0


def test_old_seconds_fall_out_of_the_window() -> None:
    clock = Clock()
    window = RequestWindow(5, clock)
    window.record(2.0, 500)
    clock.now += 3
    window.record(0.001, 200)
    assert window.stats(5).requests == 2
    assert window.stats(2).requests == 1
    clock.now += 3  # the first request is now 6 s old
    stats = window.stats(5)
    assert (stats.requests, stats.errors) == (1, 0)
    assert stats.p99_ms <= 1.25
    clock.now += 100
    assert window.stats(5).requests == 0 and window.stats(5).p99_ms == 0.0


def test_a_reused_slot_starts_empty() -> None:
    clock = Clock()
    window = RequestWindow(3, clock)
    window.record(1.0, 500)
    clock.now += 3  # the same ring slot, a new second
    window.record(0.001, 200)
    stats = window.stats(3)
    assert (stats.requests, stats.errors) == (1, 0)


@given(
    st.lists(
        st.tuples(st.integers(0, 12), st.floats(0.0005, 3.0), st.sampled_from([200, 429, 502])),
        max_size=60,
    )
)
def test_the_running_totals_match_a_recount(events: list[tuple[int, float, int]]) -> None:
    """Whatever the gaps between requests, the full-window totals (kept incrementally) equal a
    recount of the requests still inside the window."""
    clock = Clock()
    window = RequestWindow(5, clock)
    kept: list[tuple[int, float, int]] = []
    for gap, latency, status in events:
        clock.now += gap
        window.record(latency, status)
        kept.append((int(clock.now), latency, status))
        inside = [e for e in kept if e[0] > int(clock.now) - 5]
        stats = window.stats(5)
        assert stats.requests == len(inside)
        assert stats.errors == sum(1 for e in inside if e[2] >= 500)
        latencies = sorted(e[1] * 1000 for e in inside)
        true_p99 = latencies[math.ceil(0.99 * len(latencies)) - 1]
        assert true_p99 - 1e-9 <= stats.p99_ms <= max(1.0, true_p99 * 1.25 + 1e-9)
