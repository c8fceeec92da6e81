"""``python -m bench.reliability_bench``: what callers see when one of two deployments fails 30%.

Two ``relaygate mock serve`` upstreams with the same simulated latency back one model (weighted
50/50, default retry settings). The same open-loop load (constant arrival rate, on 127.0.0.1, no
coordinated omission: latency counts from each request's scheduled time) runs against the same
processes in interleaved rounds: a baseline with both upstreams healthy, then upstream A answering
30% of its requests with HTTP 500. Reported: the success rate callers saw, latency percentiles,
the p99 the failures added over the baseline (pooled, and the median of the per-round
differences), the latency of the requests that needed a second attempt, what reached each
upstream, and the breaker's transitions. ``--no-breaker`` keeps A in rotation all along, so every
one of its failures is retried (the worst case for latency); by default the breaker may eject it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from bench.oneshot import run_once
from bench.openloop import new_session
from bench.procs import Server, start_gateway, start_mock
from bench.stats import summarize_ms

MODEL = "reliable"
SUCCESS_TARGET = 0.999


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability_bench", description=__doc__)
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per phase and round")
    parser.add_argument("--rounds", type=int, default=3, help="baseline/faulty pairs, interleaved")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="upstream latency")
    parser.add_argument(
        "--fault-rate", type=float, default=0.3, help="share of A's requests failing"
    )
    parser.add_argument(
        "--no-breaker", action="store_true", help="disable A's breaker: A stays in rotation"
    )
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    return parser


def gateway_config(a: Server, b: Server, breaker: bool = True) -> dict[str, Any]:
    """One model over both upstreams, weighted 50/50, default routing."""
    deployments: list[dict[str, Any]] = [
        {"provider": "openai", "name": name, "base_url": f"{server.base_url}/v1"}
        for name, server in (("upstream-a", a), ("upstream-b", b))
    ]
    if not breaker:
        deployments[0]["breaker"] = {"enabled": False}
    return {"log_level": "warning", "models": [{"name": MODEL, "deployments": deployments}]}


def _fetch(method: str, url: str, body: dict[str, Any] | None = None) -> bytes:
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        raw: bytes = response.read()
        return raw


def set_fault(server: Server, kind: str, rate: float) -> None:
    """Script the mock's fault plan and zero its counters."""
    _fetch("PUT", f"{server.base_url}/mock/faults", {"kind": kind, "rate": rate})
    _fetch("POST", f"{server.base_url}/mock/stats/reset")


def mock_statuses(server: Server) -> dict[str, int]:
    stats = orjson.loads(_fetch("GET", f"{server.base_url}/mock/stats"))
    by_status: dict[str, int] = stats["by_status"]
    return by_status


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: seconds from its scheduled time to the answer, status, attempts header."""

    latency: float
    status: int
    attempts: int


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], due: float
) -> Sample:
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            status = resp.status
            attempts = int(resp.headers.get("x-relaygate-attempts", "0"))
    except (aiohttp.ClientError, TimeoutError):
        status, attempts = 0, 0
    return Sample(time.perf_counter() - due, status, attempts)


async def open_loop(gateway: Server, key: str, rate: float, seconds: float) -> list[Sample]:
    """``rate`` requests per second for ``seconds``, each timed from its scheduled start."""
    url = f"{gateway.base_url}/v1/chat/completions"
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with new_session() as session:
        tasks: list[asyncio.Task[Sample]] = []
        start = time.perf_counter() + 0.01
        for i in range(max(1, int(rate * seconds))):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, url, body, headers, due)))
        return list(await asyncio.gather(*tasks))


class Phase:
    """The samples of one phase pooled over rounds, and what reached each upstream."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.p99_per_round: list[float] = []
        self.upstream_a: dict[str, int] = {}
        self.upstream_b: dict[str, int] = {}

    def add(self, samples: list[Sample], a: Server, b: Server) -> None:
        self.samples += samples
        self.p99_per_round.append(summarize_ms(s.latency for s in samples)["p99"])
        for total, more in (
            (self.upstream_a, mock_statuses(a)),
            (self.upstream_b, mock_statuses(b)),
        ):
            for status, count in more.items():
                total[status] = total.get(status, 0) + count

    def summary(self) -> dict[str, Any]:
        total = len(self.samples)
        ok = [s for s in self.samples if s.status == 200]
        statuses: dict[str, int] = {}
        attempts: dict[str, int] = {}
        for sample in self.samples:
            statuses[str(sample.status)] = statuses.get(str(sample.status), 0) + 1
            attempts[str(sample.attempts)] = attempts.get(str(sample.attempts), 0) + 1
        return {
            "requests": total,
            "succeeded": len(ok),
            "success_rate": len(ok) / total if total else 0.0,
            "statuses": statuses,
            "attempts_per_request": attempts,
            "latency_ms": summarize_ms(s.latency for s in ok),
            "retried_latency_ms": summarize_ms(s.latency for s in ok if s.attempts > 1),
            "p99_ms_per_round": self.p99_per_round,
            "upstream_a": self.upstream_a,
            "upstream_b": self.upstream_b,
        }


def run_rounds(
    servers: tuple[Server, Server, Server], key: str, args: argparse.Namespace
) -> tuple[Phase, Phase]:
    """Baseline and faulty phases, interleaved, so machine noise hits both alike."""
    a, b, gateway = servers
    set_fault(a, "none", 0.0)
    asyncio.run(open_loop(gateway, key, args.rate, 0.5))  # warm-up: connections, caches
    baseline, faulty = Phase(), Phase()
    for _ in range(args.rounds):
        for phase, kind, rate in ((baseline, "none", 0.0), (faulty, "500", args.fault_rate)):
            set_fault(a, kind, rate)
            set_fault(b, "none", 0.0)
            samples = asyncio.run(open_loop(gateway, key, args.rate, args.seconds))
            for server in servers:
                server.check_alive()
            phase.add(samples, a, b)
    return baseline, faulty


def breaker_transitions(gateway: Server) -> dict[str, float]:
    """``relaygate_breaker_transitions_total`` samples from the gateway's /metrics."""
    text = _fetch("GET", f"{gateway.base_url}/metrics").decode()
    prefix = "relaygate_breaker_transitions_total"
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix + "{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.removeprefix(prefix)] = float(value)
    return found


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    options = {"latency-ms": args.latency_ms}
    servers: list[Server] = []
    try:
        a = start_mock("upstream-a", workdir, options)
        servers.append(a)
        b = start_mock("upstream-b", workdir, options)
        servers.append(b)
        config = workdir / "relaygate.yaml"
        config.write_text(yaml.safe_dump(gateway_config(a, b, breaker=not args.no_breaker)))
        gateway, key = start_gateway(config, workdir)
        servers.append(gateway)
        baseline, faulty = run_rounds((a, b, gateway), key, args)
        transitions = breaker_transitions(gateway)
    finally:
        for server in reversed(servers):
            server.stop()
    return _result(args, baseline, faulty, transitions)


def _result(
    args: argparse.Namespace, baseline: Phase, faulty: Phase, transitions: dict[str, float]
) -> dict[str, Any]:
    base, bad = baseline.summary(), faulty.summary()
    added = {q: bad["latency_ms"][q] - base["latency_ms"][q] for q in ("p50", "p90", "p99")}
    per_round = [f - b for f, b in zip(faulty.p99_per_round, baseline.p99_per_round, strict=True)]
    return {
        "setup": {
            "rate_per_s": args.rate,
            "seconds_per_phase_round": args.seconds,
            "rounds": args.rounds,
            "upstream_latency_ms": args.latency_ms,
            "fault": f"upstream-a answers HTTP 500 to {args.fault_rate:.0%} of its requests",
            "routing": "weighted 50/50, default retries (2 per deployment, 6 in all)",
            "breaker": "off for upstream-a" if args.no_breaker else "default (5 in a row or 50%)",
        },
        "baseline": base,
        "faulty": bad,
        "added_latency_ms": added,
        "added_p99_ms_median_of_rounds": statistics.median(per_round),
        "breaker_transitions": transitions,
        "meets_target": bad["success_rate"] >= SUCCESS_TARGET,
    }


def render(result: dict[str, Any]) -> str:
    """A short table for the terminal."""
    setup = result["setup"]
    lines = [f"reliability bench: {setup['fault']}; breaker {setup['breaker']}"]
    lines.append(f"{'phase':<10}{'requests':>10}{'success':>11}{'p50 ms':>9}{'p99 ms':>9}")
    for name in ("baseline", "faulty"):
        data = result[name]
        lat = data["latency_ms"]
        lines.append(
            f"{name:<10}{data['requests']:>10}{data['success_rate']:>11.4%}"
            f"{lat['p50']:>9.2f}{lat['p99']:>9.2f}"
        )
    added = result["added_latency_ms"]
    lines.append(f"added latency: p50 {added['p50']:+.2f} ms, p99 {added['p99']:+.2f} ms")
    lines.append(f"added p99, median of rounds: {result['added_p99_ms_median_of_rounds']:+.2f} ms")
    retried = result["faulty"]["retried_latency_ms"]
    lines.append(
        f"requests that needed a 2nd attempt: {int(retried['n'])}, "
        f"p50 {retried['p50']:.2f} ms, p99 {retried['p99']:.2f} ms"
    )
    faulty = result["faulty"]
    lines.append(f"upstream A saw {faulty['upstream_a']}, B {faulty['upstream_b']}")
    lines.append(f"breaker transitions: {result['breaker_transitions'] or 'none'}")
    verdict = "met" if result["meets_target"] else "MISSED"
    lines.append(f"success-rate target >= {SUCCESS_TARGET:.1%}: {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return run_once("reliability", build_parser().parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
