"""Deployment capacity: per-attempt slots under a deployment's caps and the adaptive limit."""

from relaygate.capacity.adaptive import AdaptiveLimits, GradientLimit
from relaygate.capacity.pools import Pool, pool_of
from relaygate.capacity.reserve import PriorityReserve, ProtectedDemand
from relaygate.capacity.slots import DeploymentSlots, Slot, SlotSource

__all__ = [
    "AdaptiveLimits",
    "DeploymentSlots",
    "GradientLimit",
    "Pool",
    "PriorityReserve",
    "ProtectedDemand",
    "Slot",
    "SlotSource",
    "pool_of",
]
