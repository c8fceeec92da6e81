"""Capacity by the process (issue 13): CPU per admitted and per refused request, and whether
``--workers 2`` with Redis scales.

The 200 -> 8,000 req/s step cannot be offered on a 2-core machine that also runs the generator
and the mock, so capacity is measured instead: for each setup, ``wrk -t1`` saturates one gateway
against a zero-latency mock and the run reports requests per second, the gateway's CPU (every
worker process, each on its own) per request, what the rest of the rig (generator, mock, Redis)
spent per request, context switches per request, Redis script calls per request and how often a
worker fell back to local limits. Setups:

- ``1 worker``: one process, limits in memory (the bench key's limits, as in ``bench.run``).
- ``1 worker + Redis``: the same with limits in Redis (an acquire and a release per request).
- ``1 worker + Redis, half the connections``: what each of two workers sees (32 of the 64
  connections), so the cost of a worker that is not saturated is told apart from the cost of
  a second process.
- ``2 workers + Redis``: ``serve --workers 2`` sharing limits through Redis.
- ``refusals, 1 worker``: every request refused by its key's empty token bucket.

What is measured and what is modelled (the report says which is which):

- measured: req/s on these 2 shared cores (``raw_rps_ratio_2_over_1``), the gateway's CPU per
  request and per worker, the rig's CPU per request.
- modelled, "each worker on a core of its own": a worker serves ``1000 / (CPU ms per request)``
  requests a second of its core, so N workers hold N times that. The ratio uses each setup's
  own measured CPU per request (``projected_ratio_on_dedicated_cores``); it is the capacity if
  the workers kept the per-request cost measured here, and an under-estimate when they are
  saturated there (a saturated worker batches more per wake-up, see the half-connections row).
- modelled, "this machine": the cores the gateway can get once the rig's own CPU per request is
  paid, ``min(workers, cores / (gateway + rig CPU per request))``: what 2 workers can reach on
  these 2 cores at best with the generator, mock and Redis here too.

    python -m bench.scaling [--seconds 8] [--rounds 2] [--redis-url redis://127.0.0.1:6379/0]

Redis script calls are read from the server's ``INFO commandstats``: give the run a Redis no
one else is using, or that figure counts the other clients too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.procs import (
    Server,
    cpu_seconds,
    create_key,
    environment,
    process_tree,
    start_gateway,
    start_mock,
)
from bench.rig import BENCH_KEY_LIMITS, FAST_MODEL, LIMITED_KEY_LIMITS, chat_body, write_config
from bench.stats import median
from bench.wrk import find_wrk, run_wrk, write_script

PATH = "/v1/chat/completions"
CONNECTIONS = 64
FALLBACK = b"shared limits unavailable"


@dataclass(frozen=True, slots=True)
class Setup:
    """One row of the report: a gateway, the key it is driven with and the connections."""

    gateway: str
    key: str
    connections: int = CONNECTIONS


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _start(
    home: Path, mock: Server, workers: int, redis_url: str | None
) -> tuple[Server, dict[str, str]]:
    home.mkdir()
    config = write_config(home / "relaygate.yaml", {FAST_MODEL: mock})
    env = {"RELAYGATE_WORKERS": str(workers), "RELAYGATE_REDIS_URL": redis_url or ""}
    with environment(env):
        keys = {
            "admitted": create_key(home, "bench", *BENCH_KEY_LIMITS),
            "refused": create_key(home, "limited", *LIMITED_KEY_LIMITS),
        }
        gateway, _ = start_gateway(config, home, banner_key=False)
    return gateway, keys


def _workers(gateway: Server) -> list[int]:
    """The processes that serve: the gateway itself, or the workers under its supervisor."""
    tree = process_tree(gateway.pid)
    return tree[1:] or tree


def _switches(pids: list[int]) -> int:
    """Voluntary + involuntary context switches of every thread of ``pids`` so far."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                lines = (task / "status").read_text().splitlines()
            except FileNotFoundError:
                continue
            total += sum(int(line.split()[1]) for line in lines if "ctxt_switches" in line)
    return total


class RedisProbe:
    """The Redis server's script calls and CPU, read before and after a run."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)

    def read(self) -> tuple[float, float]:
        stats = self._client.info("commandstats")
        calls = sum(
            stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval")
        )
        cpu = self._client.info("cpu")
        return float(calls), float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def close(self) -> None:
        self._client.close()


def _measure(
    wrk: str,
    gateway: Server,
    mock: Server,
    setup: Setup,
    probe: RedisProbe,
    workdir: Path,
    seconds: float,
) -> dict[str, float]:
    script = write_script(workdir / f"{setup.key[-6:]}.lua", chat_body(FAST_MODEL), setup.key)
    supervisor, workers = process_tree(gateway.pid), _workers(gateway)
    before = {pid: cpu_seconds(pid) for pid in supervisor}
    switches, log_size = _switches(workers), gateway.stderr_path.stat().st_size
    mock_before, gen_before = mock.cpu_seconds(), _children_cpu()
    calls_before, redis_before = probe.read()
    load = float(Path("/proc/loadavg").read_text().split()[0])
    result = run_wrk(wrk, gateway.base_url + PATH, script, seconds, setup.connections)
    calls_after, redis_after = probe.read()
    spent = {pid: cpu_seconds(pid) - before[pid] for pid in supervisor}
    n, seconds = max(1, result.requests), result.seconds
    gateway_cpu = sum(spent.values())
    generator = _children_cpu() - gen_before
    mock_cpu = mock.cpu_seconds() - mock_before
    redis_cpu = redis_after - redis_before
    with gateway.stderr_path.open("rb") as log:
        log.seek(log_size)
        fallbacks = log.read().count(FALLBACK)
    busiest = max(spent[pid] for pid in workers)
    return {
        "load1": load,
        "rps": result.rps,
        "requests": result.requests,
        "non_2xx": result.non_2xx,
        "gateway_cpu_ms_per_req": 1000 * gateway_cpu / n,
        "requests_per_gateway_cpu_second": n / max(gateway_cpu, 1e-9),
        "gateway_cores": gateway_cpu / seconds,
        "busiest_worker_cores": busiest / seconds,
        "rig_cpu_ms_per_req": 1000 * (generator + mock_cpu + redis_cpu) / n,
        "generator_cores": generator / seconds,
        "mock_cores": mock_cpu / seconds,
        "redis_cores": redis_cpu / seconds,
        "context_switches_per_req": (_switches(workers) - switches) / n,
        "redis_calls_per_req": (calls_after - calls_before) / n,
        "fallbacks_to_local_limits": float(fallbacks),
    }


SETUPS = {
    "1 worker": Setup("1 worker", "admitted"),
    "1 worker + Redis": Setup("1 worker + Redis", "admitted"),
    "1 worker + Redis, 32 connections": Setup("1 worker + Redis", "admitted", CONNECTIONS // 2),
    "2 workers + Redis": Setup("2 workers + Redis", "admitted"),
    "refusals, 1 worker": Setup("1 worker", "refused"),
}


def run(seconds: float, rounds: int, redis_url: str) -> dict[str, Any]:
    wrk = find_wrk()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    probe = RedisProbe(redis_url)
    with tempfile.TemporaryDirectory(prefix="relaygate-scaling-") as tmp:
        workdir = Path(tmp)
        started: list[Server] = []
        try:
            mock = start_mock("mock", workdir, {})
            started.append(mock)
            gateways: dict[str, tuple[Server, dict[str, str]]] = {}
            for name, workers, url in (
                ("1 worker", 1, None),
                ("1 worker + Redis", 1, redis_url),
                ("2 workers + Redis", 2, redis_url),
            ):
                gateway, keys = _start(workdir / f"home-{len(gateways)}", mock, workers, url)
                started.append(gateway)
                gateways[name] = (gateway, keys)
            rows: dict[str, list[dict[str, float]]] = {}
            for _ in range(rounds):  # interleaved: each round runs every setup once
                for name, setup in SETUPS.items():
                    gateway, keys = gateways[setup.gateway]
                    keyed = Setup(setup.gateway, keys[setup.key], setup.connections)
                    row = _measure(wrk, gateway, mock, keyed, probe, workdir, seconds)
                    rows.setdefault(name, []).append(row)
        finally:
            for server in reversed(started):
                server.stop()
            probe.close()
    summary = {
        name: {k: median([r[k] for r in runs]) for k in runs[0]} for name, runs in rows.items()
    }
    return {
        "load_before": load_before,
        "cpus": os.cpu_count(),
        "setups": summary,
        "rounds": rows,
        "scaling": scaling(summary, os.cpu_count() or 1),
    }


def scaling(summary: dict[str, dict[str, float]], cores: int) -> dict[str, float]:
    """The 2-worker over 1-worker ratios, measured and modelled (see the module's docstring)."""
    one, two = summary["1 worker + Redis"], summary["2 workers + Redis"]
    half = summary["1 worker + Redis, 32 connections"]

    def on_this_machine(row: dict[str, float], workers: int) -> float:
        per_request = row["gateway_cpu_ms_per_req"] + row["rig_cpu_ms_per_req"]
        gateway_cores = min(workers, cores * row["gateway_cpu_ms_per_req"] / per_request)
        return 1000 * gateway_cores / row["gateway_cpu_ms_per_req"]

    return {
        "measured_raw_rps_ratio_2_over_1": two["rps"] / one["rps"],
        "measured_cpu_per_request_2_over_1": two["gateway_cpu_ms_per_req"]
        / one["gateway_cpu_ms_per_req"],
        "measured_cpu_per_request_half_connections_over_1": half["gateway_cpu_ms_per_req"]
        / one["gateway_cpu_ms_per_req"],
        "measured_cpu_per_request_2_over_half_connections": two["gateway_cpu_ms_per_req"]
        / half["gateway_cpu_ms_per_req"],
        "modelled_1_worker_rps_on_its_own_core": 1000 / one["gateway_cpu_ms_per_req"],
        "modelled_2_workers_rps_on_their_own_cores": 2000 / two["gateway_cpu_ms_per_req"],
        "projected_ratio_on_dedicated_cores": 2
        * one["gateway_cpu_ms_per_req"]
        / two["gateway_cpu_ms_per_req"],
        "modelled_1_worker_rps_on_this_machine": on_this_machine(one, 1),
        "modelled_2_workers_rps_on_this_machine": on_this_machine(two, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report = run(args.seconds, args.rounds, args.redis_url)
    report["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
