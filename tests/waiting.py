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
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or condition}")
        time.sleep(interval)


async def eventually(
    condition: Callable[[], T], timeout: float = 5.0, interval: float = 0.01, what: str = ""
) -> T:
    """``wait_until`` for async tests: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or condition}")
        await asyncio.sleep(interval)
