"""The response cache and request coalescing: keys, entries, backends and in-flight calls."""

from relaygate.cache.base import CacheStats, Found, ResponseCache
from relaygate.cache.entry import AnswerBuilder, decode_entry, encode_entry
from relaygate.cache.flights import Flight, Flights
from relaygate.cache.keys import GLOBAL_SCOPE, CacheKey, cache_key, normalized_request
from relaygate.cache.memory import MemoryCache
from relaygate.cache.redis import CacheUnavailableError, RedisCache

__all__ = [
    "GLOBAL_SCOPE",
    "AnswerBuilder",
    "CacheKey",
    "CacheStats",
    "CacheUnavailableError",
    "Flight",
    "Flights",
    "Found",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "cache_key",
    "decode_entry",
    "encode_entry",
    "normalized_request",
]
