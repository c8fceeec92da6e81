"""Admission: shared limits, the priority queue, adaptive concurrency and degradation levels."""

from relaygate.admission.adaptive import AdaptiveLimits, GradientLimit
from relaygate.admission.build import build_admitter
from relaygate.admission.degrade import DegradeController, DegradeLevels, Level
from relaygate.admission.gate import Admitter, Ticket
from relaygate.admission.limiter import (
    Admission,
    BucketAsk,
    BucketKind,
    BucketSettle,
    Lease,
    LimiterUnavailableError,
    RateLimiter,
)
from relaygate.admission.memory import MemoryLimiter
from relaygate.admission.overload import LagMonitor
from relaygate.admission.queue import AdmissionQueue, QueueRefusedError
from relaygate.admission.redis import RedisLimiter
from relaygate.admission.resilient import ResilientLimiter

__all__ = [
    "AdaptiveLimits",
    "Admission",
    "AdmissionQueue",
    "Admitter",
    "BucketAsk",
    "BucketKind",
    "BucketSettle",
    "DegradeController",
    "DegradeLevels",
    "GradientLimit",
    "LagMonitor",
    "Lease",
    "Level",
    "LimiterUnavailableError",
    "MemoryLimiter",
    "QueueRefusedError",
    "RateLimiter",
    "RedisLimiter",
    "ResilientLimiter",
    "Ticket",
    "build_admitter",
]
