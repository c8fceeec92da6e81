"""Shared limits: token buckets and concurrency leases, in process or in Redis (with its Lua)."""

from relaygate.limits.limiter import (
    Admission,
    BucketAsk,
    BucketKind,
    BucketSettle,
    Lease,
    LimiterUnavailableError,
    RateLimiter,
)
from relaygate.limits.memory import MemoryLimiter
from relaygate.limits.redis import RedisLimiter
from relaygate.limits.resilient import ResilientLimiter

__all__ = [
    "Admission",
    "BucketAsk",
    "BucketKind",
    "BucketSettle",
    "Lease",
    "LimiterUnavailableError",
    "MemoryLimiter",
    "RateLimiter",
    "RedisLimiter",
    "ResilientLimiter",
]
