"""The run's verdicts against the spec's numbers, the stdout table and the JSON file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# Measured on this kind of machine (shared/reference/python-relay-floor.md), not in this run.
PORTKEY_RPS = 830.0
LITELLM_RPS = 83.0
# Above this many cores used by processes outside the bench, the table carries a warning.
NOISY_CORES = 0.3


@dataclass(frozen=True, slots=True)
class Target:
    """One number to reach: the measured value, the limit, and which way is good."""

    name: str
    value: float
    limit: float
    at_most: bool = True

    @property
    def met(self) -> bool:
        """Whether the value is on the right side of the limit (NaN never is)."""
        if math.isnan(self.value):
            return False
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "at_most": self.at_most,
            "met": self.met,
        }


def targets(results: dict[str, Any]) -> list[Target]:
    """The spec's numbers for whichever phases ran."""
    found: list[Target] = []
    if "throughput" in results:
        gw = results["throughput"]["summary"]["gateway"]
        found += [
            Target("gateway CPU ms per request (zero-latency upstream)", gw["cpu_ms_per_req"], 1.0),
            Target(
                "gateway req/s >= Portkey (830) and 10x LiteLLM (830)",
                gw["rps"],
                max(PORTKEY_RPS, 10 * LITELLM_RPS),
                at_most=False,
            ),
        ]
    if "latency" in results:
        added = results["latency"]["summary"]["added_ms"]
        found += [
            Target("added p50 ms at 500 req/s, 50 ms upstream", added["p50"], 1.0),
            Target("added p99 ms at 500 req/s, 50 ms upstream", added["p99"], 5.0),
        ]
    if "streaming" in results:
        summary = results["streaming"]["summary"]
        found += [
            Target("added TTFT p50 ms (streaming)", summary["added_ttft_ms"]["p50"], 2.0),
            Target("added TTFT p99 ms (streaming)", summary["added_ttft_ms"]["p99"], 2.0),
            Target(
                "gateway CPU ms per 20-event stream", summary["gateway"]["cpu_ms_per_stream"], 5.0
            ),
        ]
    errors = sum(
        results[phase]["summary"][path]["errors"]
        for phase in ("throughput", "latency", "streaming")
        if phase in results
        for path in ("direct", "gateway")
    )
    found.append(Target("failed requests, all phases", float(errors), 0.0))
    return found


def write_json(path: Path, results: dict[str, Any]) -> Path:
    """Write the results (NaN as null) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def _row(label: str, direct: str, gateway: str, note: str = "") -> str:
    return f"  {label:<34}{direct:>14}{gateway:>14}  {note}"


def _stall_row(direct: dict[str, Any], gateway: dict[str, Any]) -> str:
    def cell(stalls: dict[str, float]) -> str:
        return f"{_f(stalls['max_ms'], 1)} ({stalls['over_5ms']:.0f})"

    others = max(
        direct["machine_stalls"]["others_busy_cores_max"],
        gateway["machine_stalls"]["others_busy_cores_max"],
    )
    return _row(
        "machine stall max ms (n > 5 ms)",
        cell(direct["machine_stalls"]),
        cell(gateway["machine_stalls"]),
        f"idle probe; other tenants used up to {others:.2f} cores",
    )


def _throughput_lines(s: dict[str, Any]) -> list[str]:
    d, g = s["direct"], s["gateway"]
    return [
        "[1] Saturation, zero-latency upstream (wrk -t1 -c50)",
        _row("", "direct", "gateway"),
        _row(
            "req/s (median of rounds)",
            _f(d["rps"], 0),
            _f(g["rps"], 0),
            f"gateway/direct {s['ratio_rps']:.2f}",
        ),
        _row(
            "latency p50 / p99 ms",
            f"{_f(d['p50_ms'])}/{_f(d['p99_ms'])}",
            f"{_f(g['p50_ms'])}/{_f(g['p99_ms'])}",
        ),
        _row(
            "gateway CPU ms/request",
            "",
            _f(g["cpu_ms_per_req"], 3),
            f"on {_f(g['cpu_cores'])} cores; self-reported overhead p50 "
            f"{_f(g['self_overhead_p50_ms'], 3)} ms",
        ),
        _row(
            "mock CPU ms/request", _f(d["mock_cpu_ms_per_req"], 3), _f(g["mock_cpu_ms_per_req"], 3)
        ),
        _row(
            "gateway RSS MB (max)",
            "",
            _f(g["rss_mb"], 0),
            f"log lines {g['logged_requests']:,} / requests {g['requests']:,}",
        ),
        _row("errors", str(d["errors"]), str(g["errors"])),
        _stall_row(d, g),
    ]


def _latency_lines(s: dict[str, Any], rate: float) -> list[str]:
    d, g, added = s["direct"]["latency_ms"], s["gateway"]["latency_ms"], s["added_ms"]
    lines = [
        f"[2] Open loop {rate:,.0f} req/s, 50 ms upstream (latency from scheduled send)",
        _row("", "direct", "gateway", "added"),
    ]
    for q in ("p50", "p90", "p99"):
        lines.append(_row(f"latency {q} ms", _f(d[q]), _f(g[q]), f"{added[q]:+.2f} ms"))
    lines += [
        _row("latency max ms", _f(d["max"]), _f(g["max"])),
        _row(
            "generator send lag p99 ms",
            _f(s["direct"]["send_lag_ms"]["p99"]),
            _f(s["gateway"]["send_lag_ms"]["p99"]),
        ),
        _row(
            "gateway CPU ms/request",
            "",
            _f(s["gateway"]["cpu_ms_per_req"], 3),
            f"self-reported overhead p50/p99 {_f(s['gateway']['self_overhead_ms']['p50'], 3)}"
            f"/{_f(s['gateway']['self_overhead_ms']['p99'], 3)} ms",
        ),
        _row(
            "requests / errors",
            f"{s['direct']['requests']:,}/{s['direct']['errors']}",
            f"{s['gateway']['requests']:,}/{s['gateway']['errors']}",
        ),
        _stall_row(s["direct"], s["gateway"]),
    ]
    return lines


def _streaming_lines(s: dict[str, Any], concurrency: int) -> list[str]:
    d, g, added = s["direct"], s["gateway"], s["added_ttft_ms"]
    lines = [
        f"[3] Streaming, first token 50 ms then 10 ms apart, {concurrency} at a time",
        _row("", "direct", "gateway", "added"),
    ]
    for q in ("p50", "p90", "p99"):
        lines.append(
            _row(f"TTFT {q} ms", _f(d["ttft_ms"][q]), _f(g["ttft_ms"][q]), f"{added[q]:+.2f} ms")
        )
    lines += [
        _row("whole stream p50 ms", _f(d["total_ms"]["p50"]), _f(g["total_ms"]["p50"])),
        _row("SSE events per stream", _f(d["events_per_stream"], 1), _f(g["events_per_stream"], 1)),
        _row("gateway CPU ms/stream", "", _f(g["cpu_ms_per_stream"], 3)),
        _row("streams / errors", f"{d['streams']}/{d['errors']}", f"{g['streams']}/{g['errors']}"),
        _stall_row(d, g),
    ]
    return lines


def _noisiest(results: dict[str, Any]) -> float:
    return max(
        (
            run["machine_stalls"].get("others_busy_cores", 0.0)
            for phase in ("throughput", "latency", "streaming")
            if phase in results
            for runs in results[phase]["rounds"].values()
            for run in runs
        ),
        default=0.0,
    )


def render(results: dict[str, Any]) -> str:
    """The human-readable table."""
    meta = results["meta"]
    lines = [
        f"relaygate bench, {meta['date']}, {meta['mode']} run, {meta['rounds']} round(s), "
        f"{meta['cpus']} CPUs ({meta['cpu_model']}), load average before {meta['loadavg']}",
        "",
    ]
    noisy = _noisiest(results)
    if noisy > NOISY_CORES:
        lines += [
            f"WARNING: other processes used up to {noisy:.2f} of {meta['cpus']} cores during the "
            "measured windows: latency tails and req/s are not the servers' alone.",
            "",
        ]
    if "throughput" in results:
        lines += [*_throughput_lines(results["throughput"]["summary"]), ""]
    if "latency" in results:
        lines += [*_latency_lines(results["latency"]["summary"], meta["rate"]), ""]
    if "streaming" in results:
        lines += [
            *_streaming_lines(results["streaming"]["summary"], meta["stream_concurrency"]),
            "",
        ]
    lines.append("Targets (spec: Numbers to reach)")
    for target in targets(results):
        sign = "<=" if target.at_most else ">="
        verdict = "met" if target.met else "MISSED"
        lines.append(
            f"  {verdict:<7}{target.name}: {_f(target.value, 3)} ({sign} {target.limit:g})"
        )
    return "\n".join(lines)
