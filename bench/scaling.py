"""Capacity by the process (issue 13): CPU per admitted and per refused request, and whether
``--workers 2`` with Redis scales.

The 200 -> 8,000 req/s step cannot be offered on a 2-core machine that also runs the generator
and the mock, so capacity is measured instead: for each setup, ``wrk -t1`` saturates one gateway
against a zero-latency mock and the run reports requests per second, the gateway's CPU (every
worker process) per request, and the CPU of the generator and the mock. Setups:

- ``1 worker``: one process, limits in memory (the bench key's limits, as in ``bench.run``).
- ``1 worker + Redis``: the same with limits in Redis (one Lua round trip per admission).
- ``2 workers + Redis``: ``serve --workers 2`` sharing limits through Redis.
- ``refusals, 1 worker``: every request refused by its key's empty token bucket (the cost of a
  refused request in the same run).

The cores are shared by all of them, so raw req/s cannot show scaling here; what scales is the
CPU per request: on dedicated cores, N workers hold N / (CPU s per request) requests a second.
The report gives that projected ratio (2 workers over 1: target at least 1.7) beside the raw one.

    python -m bench.scaling [--seconds 8] [--rounds 2] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import (
    Server,
    create_key,
    environment,
    start_gateway,
    start_mock,
    tree_cpu_seconds,
)
from bench.rig import BENCH_KEY_LIMITS, FAST_MODEL, LIMITED_KEY_LIMITS, chat_body, write_config
from bench.stats import median
from bench.wrk import find_wrk, run_wrk, write_script

PATH = "/v1/chat/completions"


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


def _measure(
    wrk: str, gateway: Server, mock: Server, key: str, workdir: Path, seconds: float
) -> dict[str, float]:
    script = write_script(workdir / f"{key[-6:]}.lua", chat_body(FAST_MODEL), key)
    gw_before, mock_before, gen_before = (
        tree_cpu_seconds(gateway.pid),
        mock.cpu_seconds(),
        _children_cpu(),
    )
    result = run_wrk(wrk, gateway.base_url + PATH, script, seconds, connections=64)
    gateway_cpu = tree_cpu_seconds(gateway.pid) - gw_before
    return {
        "rps": result.rps,
        "requests": result.requests,
        "non_2xx": result.non_2xx,
        "gateway_cpu_ms_per_req": 1000 * gateway_cpu / max(1, result.requests),
        "gateway_cores": gateway_cpu / result.seconds,
        "generator_cores": (_children_cpu() - gen_before) / result.seconds,
        "mock_cores": (mock.cpu_seconds() - mock_before) / result.seconds,
    }


def run(seconds: float, rounds: int, redis_url: str) -> dict[str, Any]:
    wrk = find_wrk()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory(prefix="relaygate-scaling-") as tmp:
        workdir = Path(tmp)
        started: list[Server] = []
        try:
            mock = start_mock("mock", workdir, {})
            started.append(mock)
            setups: dict[str, tuple[Server, dict[str, str]]] = {}
            for name, workers, url in (
                ("1 worker", 1, None),
                ("1 worker + Redis", 1, redis_url),
                ("2 workers + Redis", 2, redis_url),
            ):
                gateway, keys = _start(workdir / f"home-{len(setups)}", mock, workers, url)
                started.append(gateway)
                setups[name] = (gateway, keys)
            rows: dict[str, list[dict[str, float]]] = {}
            for _ in range(rounds):
                for name, (gateway, keys) in setups.items():
                    row = _measure(wrk, gateway, mock, keys["admitted"], workdir, seconds)
                    rows.setdefault(name, []).append(row)
                gateway, keys = setups["1 worker"]
                row = _measure(wrk, gateway, mock, keys["refused"], workdir, seconds)
                rows.setdefault("refusals, 1 worker", []).append(row)
        finally:
            for server in reversed(started):
                server.stop()
    summary = {
        name: {k: median([r[k] for r in runs]) for k in runs[0]} for name, runs in rows.items()
    }
    one = summary["1 worker + Redis"]
    two = summary["2 workers + Redis"]
    return {
        "load_before": load_before,
        "setups": summary,
        "rounds": rows,
        "scaling": {
            "raw_rps_ratio_2_over_1": two["rps"] / one["rps"],
            "projected_ratio_on_dedicated_cores": 2
            * one["gateway_cpu_ms_per_req"]
            / two["gateway_cpu_ms_per_req"],
        },
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
