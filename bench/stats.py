"""Percentiles and medians for the benchmark's samples."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

PERCENTILES = (50.0, 90.0, 99.0)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of an ascending sequence, linearly interpolated (NaN if empty)."""
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(seconds: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds of samples given in seconds, plus the count."""
    ordered = sorted(s * 1000.0 for s in seconds)
    summary = {f"p{q:g}": percentile(ordered, q) for q in PERCENTILES}
    summary["max"] = ordered[-1] if ordered else float("nan")
    summary["mean"] = statistics.fmean(ordered) if ordered else float("nan")
    summary["n"] = float(len(ordered))
    return summary


def median(values: Iterable[float]) -> float:
    """Median of the values (NaN when there are none)."""
    items = list(values)
    return statistics.median(items) if items else float("nan")


def worst_stalls(runs: Iterable[dict[str, object]]) -> dict[str, float]:
    """Across ``runs``' windows: the stall probe's worst oversleep, its count over 5 ms, and the
    most CPU (in cores) that processes outside the bench used meanwhile."""
    worst, over5, others = 0.0, 0.0, 0.0
    for run in runs:
        stalls = run.get("machine_stalls")
        if isinstance(stalls, dict):
            worst = max(worst, float(stalls.get("max_ms", 0.0)))
            over5 += float(stalls.get("over_5ms", 0.0))
            others = max(others, float(stalls.get("others_busy_cores", 0.0)))
    return {"max_ms": worst, "over_5ms": over5, "others_busy_cores_max": others}


def ratio(value: float, floor: float) -> float:
    """``value / floor`` (NaN when the floor is zero or unknown)."""
    return value / floor if floor else float("nan")
