"""Phase 3: streamed answers (first token after 50 ms, then 10 ms apart): TTFT and CPU/stream."""

from __future__ import annotations

from typing import Any

from bench.openloop import new_session
from bench.plan import PATHS, Plan
from bench.rig import (
    STREAM_MODEL,
    STREAM_PROMPT,
    STREAM_SECONDS,
    Rig,
    chat_body,
    cpu_window,
    run_async,
)
from bench.stats import ratio, summarize_ms, worst_stalls
from bench.streams import StreamSample, StreamsResult, run_streams

PATH = "/v1/chat/completions"


async def _measure(
    rig: Rig, path: str, url: str, plan: Plan
) -> tuple[StreamsResult, dict[str, Any]]:
    body = chat_body(STREAM_MODEL, STREAM_PROMPT, stream=True)
    concurrency = plan.stream_concurrency
    stagger = STREAM_SECONDS / concurrency
    async with new_session() as session:
        await run_streams(session, url, body, rig.headers, plan.warm_streams, concurrency)
        with cpu_window(rig) as window:
            result = await run_streams(
                session, url, body, rig.headers, plan.streams, concurrency, stagger
            )
    count = len(result.samples)
    return result, {
        "streams": count,
        "errors": result.errors,
        "events_per_stream": result.events_per_stream(),
        "ttft_ms": result.ttft_ms(),
        "total_ms": result.total_ms(),
        "relay_cpu_ms_per_stream": (
            float("nan") if path == "direct" else window.per_item_ms(rig.relay(path).name, count)
        ),
        "mock_cpu_ms_per_stream": window.per_item_ms(rig.stream.name, count),
        "machine_stalls": window.stalls,
    }


async def _run_all(rig: Rig, plan: Plan) -> dict[str, Any]:
    urls = {"direct": rig.stream.base_url + PATH}
    urls.update({path: rig.relay(path).base_url + PATH for path in PATHS if path != "direct"})
    rounds: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
    pooled: dict[str, list[StreamSample]] = {path: [] for path in PATHS}
    for round_no in range(plan.rounds):
        for path in plan.order(round_no):
            result, record = await _measure(rig, path, urls[path], plan)
            rounds[path].append(record)
            pooled[path].extend(result.samples)
    return {"rounds": rounds, "summary": summarize(pooled, rounds)}


def run_streaming(rig: Rig, plan: Plan) -> dict[str, Any]:
    """``plan.streams`` streams, ``plan.stream_concurrency`` at a time, direct and gateway."""
    return run_async(_run_all(rig, plan))


def summarize(
    pooled: dict[str, list[StreamSample]], rounds: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """TTFT percentiles over all rounds pooled, differences, and gateway CPU per stream."""
    summary: dict[str, Any] = {}
    for path, samples in pooled.items():
        stalls = worst_stalls(rounds[path])
        good = [s for s in samples if s.ok]
        summary[path] = {
            "ttft_ms": summarize_ms(s.first_token for s in good),
            "first_event_ms": summarize_ms(s.first_event for s in good),
            "total_ms": summarize_ms(s.total for s in good),
            "events_per_stream": sum(s.events for s in good) / len(good) if good else 0.0,
            "errors": len(samples) - len(good),
            "machine_stalls": stalls,
            "streams": len(samples),
        }
    for path in ("floor", "gateway"):
        cpu = sum(r["relay_cpu_ms_per_stream"] * r["streams"] for r in rounds[path])
        summary[path]["cpu_ms_per_stream"] = cpu / max(1, summary[path]["streams"])
    direct = summary["direct"]["ttft_ms"]
    floor, gateway = summary["floor"]["ttft_ms"], summary["gateway"]["ttft_ms"]
    summary["added_ttft_ms"] = {q: gateway[q] - direct[q] for q in ("p50", "p90", "p99")}
    summary["floor_added_ttft_ms"] = {q: floor[q] - direct[q] for q in ("p50", "p90", "p99")}
    summary["vs_floor"] = {
        "cpu_ms_per_stream": ratio(
            summary["gateway"]["cpu_ms_per_stream"], summary["floor"]["cpu_ms_per_stream"]
        ),
        "ttft_p50": ratio(gateway["p50"], floor["p50"]),
        "ttft_p99": ratio(gateway["p99"], floor["p99"]),
    }
    return summary
