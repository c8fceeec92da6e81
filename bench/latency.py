"""Phase 2: added latency at a fixed arrival rate against a 50 ms upstream (open loop)."""

from __future__ import annotations

from typing import Any

from bench.gwlog import GatewayLog, read_request_log
from bench.openloop import OpenLoopResult, Sample, new_session, run_open_loop
from bench.plan import PATHS, Plan
from bench.rig import SLOW_MODEL, Rig, chat_body, cpu_window, run_async
from bench.stats import ratio, summarize_ms, worst_stalls

PATH = "/v1/chat/completions"


async def _measure(
    rig: Rig, path: str, url: str, plan: Plan
) -> tuple[OpenLoopResult, GatewayLog, dict[str, Any]]:
    body = chat_body(SLOW_MODEL)
    async with new_session() as session:
        await run_open_loop(session, url, body, rig.headers, plan.rate, plan.warm_s)
        with cpu_window(rig) as window:
            result = await run_open_loop(session, url, body, rig.headers, plan.rate, plan.load_s)
    log = read_request_log(window.log_lines)
    count = len(result.samples)
    return (
        result,
        log,
        {
            "offered_rps": plan.rate,
            "requests": count,
            "errors": result.errors,
            "latency_ms": result.latency_ms(),
            "send_lag_ms": result.send_lag_ms(),
            "relay_cpu_ms_per_req": (
                float("nan")
                if path == "direct"
                else window.per_item_ms(rig.relay(path).name, count)
            ),
            "mock_cpu_ms_per_req": window.per_item_ms(rig.slow.name, count),
            "gateway_logged_requests": log.requests,
            "gateway_overhead_ms": log.overhead_ms,
            "machine_stalls": window.stalls,
        },
    )


async def _run_all(rig: Rig, plan: Plan) -> dict[str, Any]:
    urls = {"direct": rig.slow.base_url + PATH}
    urls.update({path: rig.relay(path).base_url + PATH for path in PATHS if path != "direct"})
    rounds: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
    pooled: dict[str, list[Sample]] = {path: [] for path in PATHS}
    overhead: list[float] = []
    for round_no in range(plan.rounds):
        for path in plan.order(round_no):
            result, log, record = await _measure(rig, path, urls[path], plan)
            rounds[path].append(record)
            pooled[path].extend(result.samples)
            if path == "gateway":
                overhead.extend(log.overhead_s)
    summary = summarize(pooled, rounds)
    summary["gateway"]["self_overhead_ms"] = summarize_ms(overhead)
    return {"rounds": rounds, "summary": summary}


def run_latency(rig: Rig, plan: Plan) -> dict[str, Any]:
    """Open-loop runs at ``plan.rate``: direct and gateway in alternating order each round."""
    return run_async(_run_all(rig, plan))


def summarize(
    pooled: dict[str, list[Sample]], rounds: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Percentiles over all rounds' samples pooled, and the gateway-minus-direct differences."""
    summary: dict[str, Any] = {}
    for path, samples in pooled.items():
        stalls = worst_stalls(rounds[path])
        summary[path] = {
            "latency_ms": summarize_ms(s.latency for s in samples if s.status == 200),
            "send_lag_ms": summarize_ms(s.send_lag for s in samples),
            "errors": sum(1 for s in samples if s.status != 200),
            "machine_stalls": stalls,
            "requests": len(samples),
        }
    for path in ("floor", "gateway"):
        cpu = sum(r["relay_cpu_ms_per_req"] * r["requests"] for r in rounds[path])
        summary[path]["cpu_ms_per_req"] = cpu / max(1, summary[path]["requests"])
    direct = summary["direct"]["latency_ms"]
    floor, gateway = summary["floor"]["latency_ms"], summary["gateway"]["latency_ms"]
    summary["added_ms"] = {q: gateway[q] - direct[q] for q in ("p50", "p90", "p99")}
    summary["floor_added_ms"] = {q: floor[q] - direct[q] for q in ("p50", "p90", "p99")}
    summary["vs_floor"] = {
        "cpu_ms_per_req": ratio(
            summary["gateway"]["cpu_ms_per_req"], summary["floor"]["cpu_ms_per_req"]
        ),
        "added_p50": ratio(summary["added_ms"]["p50"], summary["floor_added_ms"]["p50"]),
        "added_p99": ratio(summary["added_ms"]["p99"], summary["floor_added_ms"]["p99"]),
    }
    return summary
