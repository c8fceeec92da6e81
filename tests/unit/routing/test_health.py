from __future__ import annotations

import logging

import pytest

from relaygate.routing.breaker import BreakerState
from relaygate.routing.health import HealthBoard
from relaygate.settings.routing import BreakerSettings

SETTINGS = BreakerSettings(consecutive_failures=2, cooldown_seconds=5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lease_counts_outstanding_until_closed_once() -> None:
    board = HealthBoard(clock=Clock())
    lease = board.admit("a", SETTINGS)
    assert lease is not None
    other = board.admit("a", SETTINGS)
    assert other is not None
    health = board.get("a")
    assert health is not None and health.outstanding == 2
    lease.succeeded(0.2)
    lease.close()
    lease.close()
    assert health.outstanding == 1
    other.close()
    assert health.outstanding == 0
    assert health.latency(0.0) == 0.2


def test_failures_open_the_breaker_and_admit_refuses() -> None:
    changes: list[tuple[str, BreakerState | None, BreakerState]] = []
    clock = Clock()
    board = HealthBoard(lambda d, o, n: changes.append((d, o, n)), clock)
    for _ in range(2):
        lease = board.admit("a", SETTINGS)
        assert lease is not None
        lease.failed(0.01)
        lease.close()
    assert board.admit("a", SETTINGS) is None
    assert board.admit("b", SETTINGS) is not None  # per deployment
    assert changes == [
        ("a", None, BreakerState.CLOSED),
        ("a", BreakerState.CLOSED, BreakerState.OPEN),
        ("b", None, BreakerState.CLOSED),
    ]
    clock.now = 5.0
    probe = board.admit("a", SETTINGS)
    assert probe is not None and probe.is_probe
    assert board.admit("a", SETTINGS) is None
    probe.close()  # closed without a verdict: released, another probe may go
    again = board.admit("a", SETTINGS)
    assert again is not None and again.is_probe
    again.succeeded(0.1)
    again.close()
    snap = {s.deployment: s for s in board.snapshot()}
    assert snap["a"].state is BreakerState.CLOSED and snap["a"].outstanding == 0


def test_one_verdict_per_lease_but_a_broken_stream_counts() -> None:
    board = HealthBoard(clock=Clock())
    lease = board.admit("a", SETTINGS)
    assert lease is not None
    lease.succeeded(0.1)
    lease.failed(0.1)  # ignored: already judged
    lease.broke_later()
    lease.close()
    second = board.admit("a", SETTINGS)
    assert second is not None
    second.broke_later()
    second.close()
    assert board.admit("a", SETTINGS) is None


def test_timeouts_push_latency_up() -> None:
    board = HealthBoard(clock=Clock())
    lease = board.admit("a", SETTINGS)
    assert lease is not None
    lease.failed(2.0, timed_out=True)
    health = board.get("a")
    assert health is not None and health.latency(0.0) == 2.0


def test_a_rate_limit_holds_for_its_retry_after_at_most_the_cooldown_and_never_trips() -> None:
    clock = Clock()
    board = HealthBoard(clock=clock)
    for retry_after in (1.5, None, 3600.0):
        lease = board.admit("a", SETTINGS)
        assert lease is not None
        lease.rate_limited(retry_after)
        lease.close()
    health = board.get("a")
    assert health is not None
    assert health.breaker.state is BreakerState.CLOSED
    assert health.held_for(clock.now) == 5.0  # 3600 s capped at the breaker's cooldown
    clock.now += 5.0
    assert health.held_for(clock.now) == 0.0


def test_panic_calls_the_hook_every_time_and_logs_at_most_every_ten_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    seen: list[str] = []
    board = HealthBoard(clock=clock, on_panic=seen.append)
    with caplog.at_level(logging.WARNING, "relaygate.routing"):
        for _ in range(3):
            board.panicked("m")
        clock.now += 10.0
        board.panicked("m")
    assert seen == ["m"] * 4
    lines = [r for r in caplog.records if "healthy panic" in r.getMessage()]
    assert [r.__dict__["fields"]["requests"] for r in lines] == [1, 3]
