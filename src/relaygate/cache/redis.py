"""The shared backend: entries in Redis, read by every process and machine.

Every Redis failure is a miss (or a skipped write), never an error, and after one the backend
leaves Redis alone for ``retry_seconds`` so that an outage costs no request a timeout. A value is
the entry's expiry (wall clock, 8 bytes) followed by the stored bytes; Redis itself drops it
``stale_seconds`` after that expiry. Anything shorter is corrupt: a miss, deleted.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from relaygate.cache.base import CacheStats, Found, label
from relaygate.cache.keys import CacheKey
from relaygate.core.redis_client import bounded_client

logger = logging.getLogger("relaygate.cache")
PREFIX = "relaygate:cache:v1"
_EXPIRY = struct.Struct(">d")


def redis_name(key: CacheKey) -> str:
    return f"{PREFIX}:{label(key.model)}:{label(key.scope)}:{key.digest}"


class RedisCache:
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        stale_seconds: float = 0.0,
        timeout_seconds: float = 0.25,
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = bounded_client(url, timeout=timeout_seconds)
        self._stale_seconds = stale_seconds
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._down_until = 0.0
        self._stats = CacheStats()

    async def get(self, key: CacheKey, *, allow_stale: bool = False) -> Found | None:
        raw = await self._call("get", lambda: self._client.get(redis_name(key)))
        if not isinstance(raw, bytes):
            self._stats.misses += 1
            return None
        if len(raw) < _EXPIRY.size:
            self._stats.misses += 1
            await self.delete(key)
            return None
        (expires_at,) = _EXPIRY.unpack_from(raw)
        now = self._clock()
        stale = now >= expires_at
        if (stale and not allow_stale) or now >= expires_at + self._stale_seconds:
            self._stats.misses += 1
            return None
        if stale:
            self._stats.stale_hits += 1
        else:
            self._stats.hits += 1
        return Found(raw[_EXPIRY.size :], stale)

    async def set(self, key: CacheKey, value: bytes, ttl_seconds: float) -> None:
        stored = _EXPIRY.pack(self._clock() + ttl_seconds) + value
        keep_ms = max(1, int((ttl_seconds + self._stale_seconds) * 1000))
        await self._call("set", lambda: self._client.set(redis_name(key), stored, px=keep_ms))

    async def delete(self, key: CacheKey) -> None:
        await self._call("delete", lambda: self._client.delete(redis_name(key)))

    async def clear(self, *, scope: str | None = None, model: str | None = None) -> int:
        model_part = label(model) if model is not None else "*"
        scope_part = label(scope) if scope is not None else "*"
        pattern = f"{PREFIX}:{model_part}:{scope_part}:*"
        removed = 0
        try:
            batch: list[bytes] = []
            async for name in self._client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= 500:
                    removed += await self._client.unlink(*batch)
                    batch = []
            if batch:
                removed += await self._client.unlink(*batch)
        except (RedisError, OSError) as err:
            # An admin asked for this: say so (the caller turns it into a 503).
            raise CacheUnavailableError(f"Redis cache unavailable: {type(err).__name__}") from err
        return removed

    def stats(self) -> CacheStats:
        return self._stats

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, what: str, op: Callable[[], Awaitable[object]]) -> object:
        now = time.monotonic()
        if now < self._down_until:
            return None
        try:
            return await op()
        except (RedisError, OSError) as err:
            self._stats.errors += 1
            self._down_until = now + self._retry_seconds
            logger.warning("response cache: Redis %s failed (%s); treated as a miss", what, err)
            return None


class CacheUnavailableError(Exception):
    """The shared cache could not be reached for an explicit admin operation."""
