"""The one way relaygate opens a Redis client: a bounded pool whose calls wait for a connection.

redis-py's default pool raises ``MaxConnectionsError`` ("Too many connections") once 100 calls
are in flight. A busy worker reaches that with ordinary traffic (a cache lookup, a session load
and a limiter call per request), and every such error was taken for Redis being down: the cache
missed, the limiter fell back to local limits. With a blocking pool a call beyond the
connections waits for one, bounded by the same timeout as the call itself.
"""

from __future__ import annotations

import redis.asyncio as aioredis

POOL_CONNECTIONS = 128
"""Redis connections per client (per process and backend)."""


def bounded_client(
    url: str, *, timeout: float, connections: int = POOL_CONNECTIONS
) -> aioredis.Redis:
    """A client on its own pool of ``connections``; ``timeout`` bounds connecting, each call
    and the wait for a free connection. Closing the client closes the pool."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)
