"""One contract for every response-cache backend: the in-process LRU and Redis (real server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from relaygate.cache import CacheKey, MemoryCache, RedisCache, ResponseCache
from relaygate.cache.redis import redis_name
from relaygate.core.redis_client import POOL_CONNECTIONS

STALE_SECONDS = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """None for the in-process backend, else a URL of the real Redis server (emptied)."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def cache(backend_url: str | None, clock: Clock) -> AsyncIterator[ResponseCache]:
    made: ResponseCache
    if backend_url is None:
        made = MemoryCache(stale_seconds=STALE_SECONDS, clock=clock)
    else:
        made = RedisCache(backend_url, stale_seconds=STALE_SECONDS, clock=clock)
    yield made
    await made.close()


def key(digest: str = "d1", model: str = "m", scope: str = "alice") -> CacheKey:
    return CacheKey(model, scope, digest)


async def test_a_stored_value_is_read_back_until_its_ttl(
    cache: ResponseCache, clock: Clock
) -> None:
    await cache.set(key(), b"answer", 10)
    found = await cache.get(key())
    assert found is not None and found.value == b"answer" and not found.stale
    clock.now += 10
    assert await cache.get(key()) is None
    assert cache.stats().hits == 1 and cache.stats().misses == 1


async def test_an_expired_value_is_served_stale_only_when_asked(
    cache: ResponseCache, clock: Clock
) -> None:
    await cache.set(key(), b"old", 5)
    clock.now += 6
    assert await cache.get(key()) is None
    found = await cache.get(key(), allow_stale=True)
    assert found is not None and found.value == b"old" and found.stale
    clock.now += STALE_SECONDS
    assert await cache.get(key(), allow_stale=True) is None


async def test_set_overwrites_and_delete_forgets(cache: ResponseCache) -> None:
    await cache.set(key(), b"one", 10)
    await cache.set(key(), b"two", 10)
    found = await cache.get(key())
    assert found is not None and found.value == b"two"
    await cache.delete(key())
    assert await cache.get(key()) is None


async def test_keys_differ_by_scope_model_and_digest(cache: ResponseCache) -> None:
    await cache.set(key(), b"alice's", 10)
    assert await cache.get(key(scope="bob")) is None
    assert await cache.get(key(model="other")) is None
    assert await cache.get(key(digest="d2")) is None


async def test_clear_by_scope_by_model_and_all(cache: ResponseCache) -> None:
    entries = [key("a", "m1", "alice"), key("b", "m2", "alice"), key("c", "m1", "bob")]
    for k in entries:
        await cache.set(k, b"x", 10)
    assert await cache.clear(scope="alice", model="m2") == 1
    assert await cache.clear(model="m1") == 2
    await cache.set(entries[0], b"x", 10)
    await cache.set(entries[2], b"x", 10)
    assert await cache.clear(scope="bob") == 1
    assert await cache.get(entries[0]) is not None
    assert await cache.clear() == 1
    assert await cache.get(entries[0]) is None


async def test_names_with_pattern_characters_clear_only_themselves(cache: ResponseCache) -> None:
    await cache.set(key(model="a*"), b"x", 10)
    await cache.set(key(model="ab"), b"x", 10)
    assert await cache.clear(model="a*") == 1
    assert await cache.get(key(model="ab")) is not None


async def test_concurrent_writers_leave_one_whole_value(cache: ResponseCache) -> None:
    await asyncio.gather(*(cache.set(key(), bytes([n]) * 1000, 10) for n in range(20)))
    found = await cache.get(key())
    assert found is not None and len(set(found.value)) == 1 and len(found.value) == 1000


# Backend-specific: the memory bound and Redis failures.


async def test_memory_cache_evicts_least_recently_used_within_its_byte_bound() -> None:
    cache = MemoryCache(max_bytes=3 * (1000 + 200))
    for digest in ("a", "b", "c"):
        await cache.set(key(digest), b"x" * 1000, 10)
    assert await cache.get(key("a")) is not None  # now "b" is the least recently used
    await cache.set(key("d"), b"x" * 1000, 10)
    assert await cache.get(key("b")) is None
    assert await cache.get(key("a")) is not None and await cache.get(key("d")) is not None
    stats = cache.stats()
    assert stats.evictions == 1 and stats.entries == 3 and stats.bytes <= 3 * 1200


async def test_memory_cache_skips_a_value_larger_than_its_bound() -> None:
    cache = MemoryCache(max_bytes=500)
    await cache.set(key(), b"x" * 1000, 10)
    assert await cache.get(key()) is None and cache.stats().bytes == 0


@pytest.mark.redis
async def test_redis_corrupt_entry_is_a_miss(redis_url: str) -> None:
    cache = RedisCache(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set(redis_name(key()), b"\x01")
        assert await cache.get(key()) is None
        assert await client.exists(redis_name(key())) == 0
    finally:
        await client.aclose()
        await cache.close()


@pytest.mark.redis
async def test_redis_entry_expires_in_redis_after_ttl_plus_stale(redis_url: str) -> None:
    cache = RedisCache(redis_url, stale_seconds=30)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await cache.set(key(), b"v", 10)
        ttl_ms = await client.pttl(redis_name(key()))
        assert 39_000 < ttl_ms <= 40_000
    finally:
        await client.aclose()
        await cache.close()


async def test_redis_down_is_a_miss_never_an_error() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", timeout_seconds=0.2)
    try:
        await cache.set(key(), b"v", 10)
        assert await cache.get(key()) is None
        await cache.delete(key())
        assert cache.stats().errors == 1  # then it leaves Redis alone for a while
    finally:
        await cache.close()


@pytest.mark.redis
async def test_more_lookups_in_flight_than_pooled_connections_all_answer(redis_url: str) -> None:
    # redis-py's default pool raised "Too many connections" at 100 calls in flight, and each
    # such lookup was counted as Redis being down: a miss, and the cache switched off for a while.
    cache = RedisCache(redis_url, timeout_seconds=5.0)
    try:
        await cache.set(key("pool"), b"answer", 60)
        found = await asyncio.gather(*(cache.get(key("pool")) for _ in range(3 * POOL_CONNECTIONS)))
        assert all(hit is not None and hit.value == b"answer" for hit in found)
        assert cache.stats().errors == 0
    finally:
        await cache.close()
