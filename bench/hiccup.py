"""A stall probe: a separate idle process that sleeps 1 ms at a time and notes oversleeps.

Its oversleeps are stalls of the machine itself (shared cores, other tenants, the kernel), not
of the processes under test, so they tell how much of a tail latency the box alone explains.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from bench.procs import CLK_TCK, cpu_seconds

_PROBE = r"""
import json, signal, sys, time
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
worst, over5, over10, n = 0.0, 0, 0, 0
while not stop:
    t = time.perf_counter()
    time.sleep(0.001)
    late = (time.perf_counter() - t - 0.001) * 1000.0
    n += 1
    worst = max(worst, late)
    over5 += late > 5.0
    over10 += late > 10.0
print(json.dumps({"wakeups": n, "max_ms": round(worst, 2), "over_5ms": over5, "over_10ms": over10}))
"""


class HiccupProbe:
    """Start with ``start()``; ``stop()`` returns the worst oversleep and counts over 5/10 ms."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the probe process."""
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROBE], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )

    def stop(self) -> dict[str, float]:
        """Stop the probe and return its report (empty if it failed)."""
        if self._proc is None:
            return {}
        self._proc.send_signal(signal.SIGTERM)
        out, _ = self._proc.communicate(timeout=5)
        self._proc = None
        try:
            report: dict[str, float] = orjson.loads(out)
        except orjson.JSONDecodeError:
            return {}
        return report


def machine_ticks() -> tuple[int, int]:
    """Cumulative (busy, steal) CPU time of the whole machine in clock ticks (``/proc/stat``).

    Busy is everything but idle and iowait, summed over all CPUs.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq, steal


def load_generator_seconds() -> float:
    """CPU seconds used by this process and its reaped children (wrk, the stall probe)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def others_busy_cores(own_pids: list[int], seconds: float = 1.0) -> float:
    """Cores used over ``seconds`` by everything except ``own_pids`` and this process."""
    busy, _ = machine_ticks()
    own = _own_seconds(own_pids)
    time.sleep(seconds)
    busy_after, _ = machine_ticks()
    used = (busy_after - busy) / CLK_TCK - (_own_seconds(own_pids) - own)
    return max(0.0, used) / seconds


def wait_until_quiet(own_pids: list[int], max_wait: float, threshold: float = 0.3) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``threshold`` cores.

    Returns the last reading, in cores; the benchmark runs anyway when time is up.
    """
    deadline = time.monotonic() + max_wait
    reading = others_busy_cores(own_pids)
    while reading > threshold and time.monotonic() < deadline:
        reading = others_busy_cores(own_pids)
    return reading


def _own_seconds(pids: list[int]) -> float:
    total = load_generator_seconds()
    for pid in pids:
        total += cpu_seconds(pid)
    return total
