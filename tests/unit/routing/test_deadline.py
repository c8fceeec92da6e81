from __future__ import annotations

from relaygate.routing.deadline import Deadline
from relaygate.transport.base import Timeouts


def test_remaining_counts_down() -> None:
    deadline = Deadline(100.0, 5.0)
    assert deadline.remaining(100.0) == 5.0
    assert deadline.remaining(104.0) == 1.0
    assert deadline.remaining(106.0) == -1.0


def test_timeouts_untouched_while_they_fit() -> None:
    timeouts = Timeouts(1.0, 2.0, 3.0)
    assert Deadline(0.0, 10.0).timeouts(timeouts, 5.0) is timeouts


def test_timeouts_cut_to_the_deadline() -> None:
    cut = Deadline(0.0, 10.0).timeouts(Timeouts(5.0, 60.0, 600.0), 8.5)
    assert cut == Timeouts(connect=1.5, first_byte=1.5, total=1.5)
    kept = Deadline(0.0, 10.0).timeouts(Timeouts(0.5, 1.0, 600.0), 8.0)
    assert kept == Timeouts(connect=0.5, first_byte=1.0, total=2.0)


def test_expired_deadline_gives_zero_timeouts() -> None:
    cut = Deadline(0.0, 1.0).timeouts(Timeouts(), 3.0)
    assert cut == Timeouts(0.0, 0.0, 0.0)
