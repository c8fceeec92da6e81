"""Phase 1: saturation throughput, zero-latency upstream: direct, floor and gateway, with wrk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.gwlog import read_request_log
from bench.plan import PATHS, Plan
from bench.rig import FAST_MODEL, Rig, chat_body, cpu_window
from bench.stats import median, ratio, worst_stalls
from bench.wrk import WrkResult, run_wrk, write_script

PATH = "/v1/chat/completions"


def _measure(rig: Rig, wrk: str, path: str, url: str, script: Path, plan: Plan) -> dict[str, Any]:
    run_wrk(wrk, url, script, plan.warm_s, plan.connections)
    with cpu_window(rig) as window:
        result: WrkResult = run_wrk(wrk, url, script, plan.load_s, plan.connections)
    log = read_request_log(window.log_lines)
    record = {
        "rps": result.rps,
        "requests": result.requests,
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
        "latency_ms": result.latency_ms,
        "mock_cpu_ms_per_req": window.per_item_ms(rig.fast.name, result.requests),
        "mock_cpu_cores": window.cpu.get(rig.fast.name, 0.0) / window.wall,
        "gateway_logged_requests": log.requests,
        "gateway_overhead_ms": log.overhead_ms,
        "machine_stalls": window.stalls,
    }
    if path != "direct":
        relay = rig.relay(path)
        record["relay_cpu_ms_per_req"] = window.per_item_ms(relay.name, result.requests)
        record["relay_cpu_cores"] = window.cpu.get(relay.name, 0.0) / window.wall
        record["relay_rss_mb"] = relay.rss_mb()
    return record


def run_throughput(rig: Rig, wrk: str, workdir: Path, plan: Plan) -> dict[str, Any]:
    """Each round: wrk warm-up then a measured run, the three paths in alternating order."""
    script = write_script(workdir / "post.lua", chat_body(FAST_MODEL), rig.key)
    urls = {"direct": rig.fast.base_url + PATH}
    urls.update({path: rig.relay(path).base_url + PATH for path in PATHS if path != "direct"})
    rounds: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
    for round_no in range(plan.rounds):
        for path in plan.order(round_no):
            rounds[path].append(_measure(rig, wrk, path, urls[path], script, plan))
    return {"rounds": rounds, "summary": summarize(rounds)}


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over rounds for each path; the gateway's ratios to direct and to the floor."""
    summary: dict[str, Any] = {}
    for path, runs in rounds.items():
        summary[path] = {
            "rps": median(r["rps"] for r in runs),
            "p50_ms": median(r["latency_ms"].get("p50", float("nan")) for r in runs),
            "p99_ms": median(r["latency_ms"].get("p99", float("nan")) for r in runs),
            "errors": sum(r["non_2xx"] + r["socket_errors"] for r in runs),
            "mock_cpu_ms_per_req": median(r["mock_cpu_ms_per_req"] for r in runs),
            "machine_stalls": worst_stalls(runs),
            "requests": sum(r["requests"] for r in runs),
        }
        if path != "direct":
            summary[path]["cpu_ms_per_req"] = median(r["relay_cpu_ms_per_req"] for r in runs)
            summary[path]["cpu_cores"] = median(r["relay_cpu_cores"] for r in runs)
            summary[path]["rss_mb"] = max(r["relay_rss_mb"] for r in runs)
    gateway, floor = summary["gateway"], summary["floor"]
    gateway_runs = rounds["gateway"]
    gateway["self_overhead_p50_ms"] = median(r["gateway_overhead_ms"]["p50"] for r in gateway_runs)
    gateway["logged_requests"] = sum(r["gateway_logged_requests"] for r in gateway_runs)
    summary["ratio_rps"] = gateway["rps"] / summary["direct"]["rps"]
    summary["vs_floor"] = {
        "cpu_ms_per_req": ratio(gateway["cpu_ms_per_req"], floor["cpu_ms_per_req"]),
        "rps": ratio(gateway["rps"], floor["rps"]),
    }
    return summary
