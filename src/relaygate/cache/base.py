"""The narrow protocol every response-cache backend implements, and its stats."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from relaygate.cache.keys import CacheKey


@dataclass(slots=True, frozen=True)
class Found:
    """A stored value; ``stale`` when its TTL has passed (returned only to ``allow_stale``)."""

    value: bytes
    stale: bool = False


@dataclass(slots=True)
class CacheStats:
    """Counts since start (this process), and the bytes and entries held now (memory only)."""

    hits: int = 0
    misses: int = 0
    stale_hits: int = 0
    evictions: int = 0
    errors: int = 0
    bytes: int = 0
    entries: int = 0


class ResponseCache(Protocol):
    """get/set/delete by key with a TTL; expired entries stay readable as stale for
    ``stale_seconds`` after their TTL. No method raises for a backend failure: it is a miss."""

    name: str

    async def get(self, key: CacheKey, *, allow_stale: bool = False) -> Found | None: ...

    async def set(self, key: CacheKey, value: bytes, ttl_seconds: float) -> None: ...

    async def delete(self, key: CacheKey) -> None: ...

    async def clear(self, *, scope: str | None = None, model: str | None = None) -> int:
        """Remove every entry (of ``scope`` and/or ``model`` when given); the count removed."""
        ...

    def stats(self) -> CacheStats: ...

    async def close(self) -> None: ...


def label(text: str) -> str:
    """A short fixed-alphabet tag of a model or scope name, safe inside a Redis key pattern."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
