"""Phase 4: what a refusal costs the gateway, with wrk at saturation (issue 13: <= 0.1 ms CPU).

Three refusals, each measured alone with ``wrk -t1 -c50`` so the gateway refuses as fast as one
core lets it:

- ``bad key (401)``: a well-formed but unknown ``rg-`` key. The floor relay refuses the same
  request too (its key check is a set lookup), as the yardstick for this one.
- ``rate limit (429)``: the rig's ``limited`` key (1 request per second, burst 1), so its
  token bucket is empty for the whole window.
- ``busy (429)``: the ``bench-busy`` model, whose only deployment admits one request at a time,
  held by one hanging request (``mock:fault hang``) for the whole window; wrk's requests carry
  ``x-relaygate-max-wait-ms: 0`` so each is refused at once instead of queueing.

Reported per kind: refusals per second, CPU ms per refusal (the relay's CPU over the window /
requests), refusals per second one core would sustain at that cost, and the statuses the gateway
logged in the window (a check that the refusals were the intended ones).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.plan import Plan
from bench.procs import BenchError
from bench.rig import BUSY_MODEL, FAST_MODEL, Rig, chat_body, cpu_window, run_async
from bench.stats import median, ratio, worst_stalls
from bench.wrk import WrkResult, run_wrk, write_script

PATH = "/v1/chat/completions"
BAD_KEY = "rg-" + "0" * 40
NO_WAIT = {"x-relaygate-max-wait-ms": "0"}


def _statuses(lines: list[bytes]) -> dict[str, int]:
    found: Counter[str] = Counter()
    for line in lines:
        if b'"msg":"request"' in line:
            with contextlib.suppress(orjson.JSONDecodeError):
                found[str(orjson.loads(line).get("status"))] += 1
    return dict(found)


def _measure(rig: Rig, wrk: str, relay: str, script: Path, plan: Plan) -> dict[str, Any]:
    server = rig.relay(relay)
    url = server.base_url + PATH
    run_wrk(wrk, url, script, plan.warm_s, plan.connections)
    with cpu_window(rig) as window:
        result: WrkResult = run_wrk(wrk, url, script, plan.load_s, plan.connections)
    cpu_ms = window.per_item_ms(server.name, result.requests)
    return {
        "rps": result.rps,
        "requests": result.requests,
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
        "latency_ms": result.latency_ms,
        "cpu_ms_per_refusal": cpu_ms,
        "cpu_cores": window.cpu.get(server.name, 0.0) / window.wall,
        "logged_statuses": _statuses(window.log_lines) if relay == "gateway" else {},
        "machine_stalls": window.stalls,
    }


@contextlib.asynccontextmanager
async def _held_busy(rig: Rig) -> AsyncIterator[None]:
    """Keep ``bench-busy``'s only slot taken by one hanging request while the block runs."""
    body = chat_body(BUSY_MODEL, "mock:fault hang")
    async with aiohttp.ClientSession() as session:

        async def hold() -> int:
            url = rig.gateway.base_url + PATH
            async with session.post(url, data=body, headers=rig.headers) as resp:
                return resp.status

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.5)  # admitted and waiting on the mock
        if holder.done():
            raise BenchError(f"the busy holder ended early: {holder.result()}")
        try:
            yield
        finally:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await holder


async def _busy(rig: Rig, wrk: str, script: Path, plan: Plan) -> dict[str, Any]:
    async with _held_busy(rig):
        return await asyncio.to_thread(_measure, rig, wrk, "gateway", script, plan)


def run_refusals(rig: Rig, wrk: str, workdir: Path, plan: Plan) -> dict[str, Any]:
    """Each round: the three refusals through the gateway, and a bad key through the floor."""
    scripts = {
        "bad key (401)": write_script(workdir / "bad-key.lua", chat_body(FAST_MODEL), BAD_KEY),
        "rate limit (429)": write_script(
            workdir / "limited.lua", chat_body(FAST_MODEL), rig.limited_key
        ),
        "busy (429)": write_script(workdir / "busy.lua", chat_body(BUSY_MODEL), rig.key, NO_WAIT),
    }
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in scripts}
    rounds["floor: bad key (401)"] = []
    for round_no in range(plan.rounds):
        kinds = list(scripts) if round_no % 2 == 0 else list(scripts)[::-1]
        for kind in kinds:
            if kind == "busy (429)":
                record = run_async(_busy(rig, wrk, scripts[kind], plan))
            else:
                record = _measure(rig, wrk, "gateway", scripts[kind], plan)
            rounds[kind].append(record)
        floor = _measure(rig, wrk, "floor", scripts["bad key (401)"], plan)
        rounds["floor: bad key (401)"].append(floor)
    return {"rounds": rounds, "summary": summarize(rounds)}


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over rounds per kind; the gateway's 401 cost as a ratio to the floor's."""
    summary: dict[str, Any] = {}
    for kind, runs in rounds.items():
        cpu = median(r["cpu_ms_per_refusal"] for r in runs)
        statuses: Counter[str] = Counter()
        for run in runs:
            statuses.update(run["logged_statuses"])
        summary[kind] = {
            "rps": median(r["rps"] for r in runs),
            "cpu_ms_per_refusal": cpu,
            "refusals_per_core_second": ratio(1000.0, cpu),
            "cpu_cores": median(r["cpu_cores"] for r in runs),
            "p99_ms": median(r["latency_ms"].get("p99", float("nan")) for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "not_refused": sum(r["requests"] - r["non_2xx"] for r in runs),
            "logged_statuses": dict(statuses),
            "machine_stalls": worst_stalls(runs),
        }
    floor = summary["floor: bad key (401)"]["cpu_ms_per_refusal"]
    summary["bad key (401)"]["vs_floor"] = ratio(
        summary["bad key (401)"]["cpu_ms_per_refusal"], floor
    )
    return summary
