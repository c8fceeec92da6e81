"""HttpTransport's own parts: the per-request connect timeout objects it keeps."""

from __future__ import annotations

from relaygate.transport.http import MAX_CACHED_CONNECT_TIMEOUTS, HttpTransport


def test_connect_timeouts_are_built_once_and_their_cache_stays_bounded() -> None:
    transport = HttpTransport()
    assert transport._connect_timeout(10.0) is transport._connect_timeout(10.0)
    for n in range(1_000):  # a deadline clips the connect timeout to any value
        assert transport._connect_timeout(n / 1000).sock_connect == n / 1000
    assert len(transport._connect_timeouts) <= MAX_CACHED_CONNECT_TIMEOUTS
