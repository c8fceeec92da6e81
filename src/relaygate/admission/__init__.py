"""Admission: whether a request may start now — the gate, the priority queue, degradation levels
and event-loop-lag shedding. Shared limiters live in ``relaygate.limits``, deployment caps in
``relaygate.capacity``."""

from relaygate.admission.build import build_admitter
from relaygate.admission.degrade import DegradeController, DegradeLevels, Level
from relaygate.admission.gate import Admitter, Ticket
from relaygate.admission.overload import LagMonitor
from relaygate.admission.queue import AdmissionQueue, QueueRefusedError

__all__ = [
    "AdmissionQueue",
    "Admitter",
    "DegradeController",
    "DegradeLevels",
    "LagMonitor",
    "Level",
    "QueueRefusedError",
    "Ticket",
    "build_admitter",
]
