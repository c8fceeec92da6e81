"""Deployment capacity: per-attempt slots under a deployment's caps and the adaptive limit."""

from relaygate.capacity.adaptive import AdaptiveLimits, GradientLimit
from relaygate.capacity.reserve import PriorityReserve, ProtectedDemand
from relaygate.capacity.slots import DeploymentSlots, Pool, Slot, SlotSource, pool_of

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
