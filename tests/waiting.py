"""Wait for a condition instead of sleeping a fixed time: poll it until it holds or time is up.

A fixed sleep is either too long (every run pays it) or too short (a loaded machine flakes);
polling the observable condition is neither. Sleeps that remain in the tests are the behaviour
under test (a window or TTL to wait out, a simulated latency) and say so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``condition`` until it returns something truthy, and return that; fail after
    ``timeout`` seconds (from a synchronous test, e.g. one talking to a gateway process)."""
    deadline = time.monotonic() + timeout
    while (value := _attempt(condition, deadline, what)) is None:
        time.sleep(interval)
    return value


async def eventually(
    condition: Callable[[], T], timeout: float = 5.0, interval: float = 0.01, what: str = ""
) -> T:
    """``wait_until`` for async tests: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while (value := _attempt(condition, deadline, what)) is None:
        await asyncio.sleep(interval)
    return value


def _attempt(condition: Callable[[], T], deadline: float, what: str) -> T | None:
    """The condition's value when truthy, None while time is left; fails once it is up."""
    value = condition()
    if value:
        return value
    assert time.monotonic() < deadline, f"not reached in time: {what or condition}"
    return None
