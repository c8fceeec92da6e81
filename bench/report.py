"""The run's verdicts against the spec's numbers, the stdout table and the JSON file."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.plan import PATHS

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
        vs = results["throughput"]["summary"]["vs_floor"]
        found += [
            Target("gateway/floor CPU per request at saturation", vs["cpu_ms_per_req"], 1.5),
            Target("gateway/floor req/s at saturation", vs["rps"], 0.6, at_most=False),
        ]
    if "latency" in results:
        added = results["latency"]["summary"]["added_ms"]
        found += [
            Target("added p50 ms at 500 req/s, 50 ms upstream", added["p50"], 1.0),
            Target("added p99 ms at 500 req/s, 50 ms upstream (issue 13: 3)", added["p99"], 3.0),
            Target(
                "gateway/floor CPU per request at 500 req/s",
                results["latency"]["summary"]["vs_floor"]["cpu_ms_per_req"],
                1.5,
            ),
        ]
    if "streaming" in results:
        summary = results["streaming"]["summary"]
        found += [
            Target(
                "added TTFT p50 ms (streaming; issue 13: 1)", summary["added_ttft_ms"]["p50"], 1.0
            ),
            Target("added TTFT p99 ms (streaming)", summary["added_ttft_ms"]["p99"], 2.0),
            Target(
                "gateway CPU ms per 23-event stream", summary["gateway"]["cpu_ms_per_stream"], 5.0
            ),
            Target(
                "gateway/floor CPU per 23-event stream",
                summary["vs_floor"]["cpu_ms_per_stream"],
                1.5,
            ),
        ]
    if "refusals" in results:
        for kind, record in results["refusals"]["summary"].items():
            if kind.startswith("floor"):
                continue
            found.append(
                Target(f"gateway CPU ms per refusal ({kind})", record["cpu_ms_per_refusal"], 0.1)
            )
    errors = sum(
        results[phase]["summary"][path]["errors"]
        for phase in ("throughput", "latency", "streaming")
        if phase in results
        for path in PATHS
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


def _row(label: str, direct: str, floor: str, gateway: str, note: str = "") -> str:
    return f"  {label:<34}{direct:>13}{floor:>13}{gateway:>13}  {note}"


def _per_path(cell: Callable[[str], str]) -> tuple[str, str, str]:
    return cell("direct"), cell("floor"), cell("gateway")


def _x(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def _stall_row(summary: dict[str, Any]) -> str:
    def cell(path: str) -> str:
        stalls = summary[path]["machine_stalls"]
        return f"{_f(stalls['max_ms'], 1)} ({stalls['over_5ms']:.0f})"

    others = max(summary[p]["machine_stalls"]["others_busy_cores_max"] for p in PATHS)
    return _row(
        "machine stall max ms (n > 5 ms)",
        cell("direct"),
        cell("floor"),
        cell("gateway"),
        f"idle probe; other tenants used up to {others:.2f} cores",
    )


def _throughput_lines(s: dict[str, Any]) -> list[str]:
    d, f, g, vs = s["direct"], s["floor"], s["gateway"], s["vs_floor"]
    return [
        "[1] Saturation, zero-latency upstream (wrk -t1 -c50)",
        _row("", "direct", "floor", "gateway", "gateway/floor"),
        _row(
            "req/s (median of rounds)",
            _f(d["rps"], 0),
            _f(f["rps"], 0),
            _f(g["rps"], 0),
            f"{_x(vs['rps'])}  (gateway/direct {s['ratio_rps']:.2f})",
        ),
        _row(
            "latency p50 / p99 ms",
            f"{_f(d['p50_ms'])}/{_f(d['p99_ms'])}",
            f"{_f(f['p50_ms'])}/{_f(f['p99_ms'])}",
            f"{_f(g['p50_ms'])}/{_f(g['p99_ms'])}",
        ),
        _row(
            "relay CPU ms/request",
            "",
            _f(f["cpu_ms_per_req"], 3),
            _f(g["cpu_ms_per_req"], 3),
            f"{_x(vs['cpu_ms_per_req'])}  (gateway on {_f(g['cpu_cores'])} cores; "
            f"self-reported overhead p50 {_f(g['self_overhead_p50_ms'], 3)} ms)",
        ),
        _row(
            "mock CPU ms/request",
            _f(d["mock_cpu_ms_per_req"], 3),
            _f(f["mock_cpu_ms_per_req"], 3),
            _f(g["mock_cpu_ms_per_req"], 3),
        ),
        _row(
            "relay RSS MB (max)",
            "",
            _f(f["rss_mb"], 0),
            _f(g["rss_mb"], 0),
            f"gateway log lines {g['logged_requests']:,} / requests {g['requests']:,}",
        ),
        _row("errors", str(d["errors"]), str(f["errors"]), str(g["errors"])),
        _stall_row(s),
    ]


def _latency_lines(s: dict[str, Any], rate: float) -> list[str]:
    lat = {p: s[p]["latency_ms"] for p in PATHS}
    added, floor_added, vs = s["added_ms"], s["floor_added_ms"], s["vs_floor"]
    lines = [
        f"[2] Open loop {rate:,.0f} req/s, 50 ms upstream (latency from scheduled send)",
        _row("", "direct", "floor", "gateway", "added over direct: floor / gateway"),
    ]
    for q in ("p50", "p90", "p99"):
        lines.append(
            _row(
                f"latency {q} ms",
                _f(lat["direct"][q]),
                _f(lat["floor"][q]),
                _f(lat["gateway"][q]),
                f"{floor_added[q]:+.2f} / {added[q]:+.2f} ms",
            )
        )
    lines += [
        _row("latency max ms", *_per_path(lambda p: _f(lat[p]["max"]))),
        _row("generator send lag p99 ms", *_per_path(lambda p: _f(s[p]["send_lag_ms"]["p99"]))),
        _row(
            "relay CPU ms/request",
            "",
            _f(s["floor"]["cpu_ms_per_req"], 3),
            _f(s["gateway"]["cpu_ms_per_req"], 3),
            f"gateway/floor {_x(vs['cpu_ms_per_req'])}; gateway self-reported overhead p50/p99 "
            f"{_f(s['gateway']['self_overhead_ms']['p50'], 3)}"
            f"/{_f(s['gateway']['self_overhead_ms']['p99'], 3)} ms",
        ),
        _row("requests / errors", *_per_path(lambda p: f"{s[p]['requests']:,}/{s[p]['errors']}")),
        _stall_row(s),
    ]
    return lines


def _streaming_lines(s: dict[str, Any], concurrency: int) -> list[str]:
    added, floor_added, vs = s["added_ttft_ms"], s["floor_added_ttft_ms"], s["vs_floor"]
    lines = [
        f"[3] Streaming, first token 50 ms then 10 ms apart, {concurrency} at a time",
        _row("", "direct", "floor", "gateway", "added over direct: floor / gateway"),
    ]
    for q in ("p50", "p90", "p99"):
        lines.append(
            _row(
                f"TTFT {q} ms",
                *_per_path(lambda p, q=q: _f(s[p]["ttft_ms"][q])),  # type: ignore[misc]
                f"{floor_added[q]:+.2f} / {added[q]:+.2f} ms",
            )
        )
    lines += [
        _row("whole stream p50 ms", *_per_path(lambda p: _f(s[p]["total_ms"]["p50"]))),
        _row("SSE events per stream", *_per_path(lambda p: _f(s[p]["events_per_stream"], 1))),
        _row(
            "relay CPU ms/stream",
            "",
            _f(s["floor"]["cpu_ms_per_stream"], 3),
            _f(s["gateway"]["cpu_ms_per_stream"], 3),
            f"gateway/floor {_x(vs['cpu_ms_per_stream'])}",
        ),
        _row("streams / errors", *_per_path(lambda p: f"{s[p]['streams']}/{s[p]['errors']}")),
        _stall_row(s),
    ]
    return lines


def _refusal_lines(s: dict[str, Any]) -> list[str]:
    lines = [
        "[4] Refusals at saturation (wrk -t1 -c50), each kind alone",
        f"  {'':<34}{'refused/s':>13}{'CPU ms/ref.':>13}{'per core/s':>13}  statuses logged",
    ]
    for kind, r in s.items():
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["logged_statuses"].items()))
        note = statuses or "-"
        if "vs_floor" in r:
            note += f"; gateway/floor {_x(r['vs_floor'])}"
        if r["not_refused"]:
            note += f"; NOT refused: {r['not_refused']:,}"
        lines.append(
            f"  {kind:<34}{_f(r['rps'], 0):>13}{_f(r['cpu_ms_per_refusal'], 3):>13}"
            f"{_f(r['refusals_per_core_second'], 0):>13}  {note}"
        )
    others = max(r["machine_stalls"]["others_busy_cores_max"] for r in s.values())
    lines.append(f"  other tenants used up to {others:.2f} cores")
    return lines


def _noisiest(results: dict[str, Any]) -> float:
    return max(
        (
            run["machine_stalls"].get("others_busy_cores", 0.0)
            for phase in ("throughput", "latency", "streaming", "refusals")
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
    if "refusals" in results:
        lines += [*_refusal_lines(results["refusals"]["summary"]), ""]
    lines.append("Targets (spec and issue 13)")
    for target in targets(results):
        sign = "<=" if target.at_most else ">="
        verdict = "met" if target.met else "MISSED"
        lines.append(
            f"  {verdict:<7}{target.name}: {_f(target.value, 3)} ({sign} {target.limit:g})"
        )
    return "\n".join(lines)
