"""The in-process backend: an LRU bounded by the bytes of its values."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from relaygate.cache.base import CacheStats, Found
from relaygate.cache.keys import CacheKey

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
# What an entry costs beyond its value (key, bookkeeping): keeps tiny entries from being free.
ENTRY_OVERHEAD = 200


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires_at: float
    size: int


class MemoryCache:
    name = "memory"

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_BYTES,
        stale_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_bytes = max_bytes
        self._stale_seconds = stale_seconds
        self._clock = clock
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._stats = CacheStats()

    async def get(self, key: CacheKey, *, allow_stale: bool = False) -> Found | None:
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and now >= entry.expires_at + self._stale_seconds:
            self._drop(key)
            entry = None
        if entry is None or (now >= entry.expires_at and not allow_stale):
            self._stats.misses += 1
            return None
        self._entries.move_to_end(key)
        stale = now >= entry.expires_at
        if stale:
            self._stats.stale_hits += 1
        else:
            self._stats.hits += 1
        return Found(entry.value, stale)

    async def set(self, key: CacheKey, value: bytes, ttl_seconds: float) -> None:
        size = len(value) + ENTRY_OVERHEAD
        if size > self._max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(value, self._clock() + ttl_seconds, size)
        self._stats.bytes += size
        while self._stats.bytes > self._max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self._stats.evictions += 1

    async def delete(self, key: CacheKey) -> None:
        if key in self._entries:
            self._drop(key)

    async def clear(self, *, scope: str | None = None, model: str | None = None) -> int:
        doomed = [
            k
            for k in self._entries
            if (scope is None or k.scope == scope) and (model is None or k.model == model)
        ]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def stats(self) -> CacheStats:
        self._stats.entries = len(self._entries)
        return self._stats

    async def close(self) -> None:
        self._entries.clear()
        self._stats.bytes = 0

    def _drop(self, key: CacheKey) -> None:
        entry = self._entries.pop(key)
        self._stats.bytes -= entry.size
