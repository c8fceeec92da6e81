"""The overall request deadline, and each attempt's timeouts cut down to what is left of it."""

from __future__ import annotations

from relaygate.transport.base import Timeouts


class Deadline:
    """An instant on a monotonic clock after which no attempt runs and no back-off sleeps."""

    __slots__ = ("at", "seconds")

    def __init__(self, now: float, seconds: float) -> None:
        self.seconds = seconds
        self.at = now + seconds

    def remaining(self, now: float) -> float:
        return self.at - now

    def timeouts(self, timeouts: Timeouts, now: float) -> Timeouts:
        """``timeouts`` with no bound past the deadline (the same object when none is)."""
        left = self.at - now
        if timeouts.total <= left:
            return timeouts
        left = max(left, 0.0)
        return Timeouts(
            connect=min(timeouts.connect, left),
            first_byte=min(timeouts.first_byte, left),
            total=left,
            idle=timeouts.idle,
        )
