"""``python -m bench.soak``: does the gateway leak under long mixed traffic?

One ``relaygate mock serve`` upstream (both wires over HTTP) and one gateway with three models:
``soak-gpt`` (OpenAI wire), ``soak-claude`` (Anthropic wire) and ``soak-inproc`` (the in-process
mock, Anthropic wire). An open-loop generator (constant arrival rate, seeded) sends a mix for
``--seconds``: both caller dialects against all three models (so translated and not), half of
them streamed, ~5% asking the mock for a fault (``mock:fault 429|500|529|drop|malformed``) and
~2% of streams abandoned by the client after the first chunk.

The gateway's resident memory (VmRSS), open file descriptors (``/proc/PID/fd``) and asyncio task
count (the ``relaygate_asyncio_tasks`` gauge in ``/metrics``) are read after a warm-up, with the
gateway idle, and again at the end once in-flight requests have finished; samples under load are
kept for the trend. The target: each grows by less than 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from bench.oneshot import run_once
from bench.openloop import new_session
from bench.procs import BenchError, Server, cpu_seconds, rss_mb, start_gateway, start_mock
from bench.rig import run_async

GROWTH_TARGET_PERCENT = 5.0
MODELS = ("soak-gpt", "soak-claude", "soak-inproc")
FAULTS = ("429", "500", "529", "drop", "malformed")
MOCK_OPTIONS = {"latency-ms": 20, "first-token-ms": 20, "stream-interval-ms": 5}
SETTLE_SECONDS = 3.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0, help="measured duration")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--warmup", type=float, default=20.0, help="warm-up seconds, same mix")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--fault-share", type=float, default=0.05, help="requests asking a fault")
    parser.add_argument("--seed", type=int, default=1, help="seed of the traffic mix")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    return parser


def gateway_config(mock: Server) -> dict[str, Any]:
    """Three models; one attempt each, so an asked-for fault is answered, not retried."""
    once = {"attempts_per_deployment": 1, "max_attempts": 1}
    inproc = {"dialect": "anthropic", "latency_ms": 20, "stream_interval_ms": 5}
    return {
        "log_level": "warning",
        "models": [
            {
                "name": "soak-gpt",
                "routing": once,
                "deployments": [{"provider": "openai", "base_url": f"{mock.base_url}/v1"}],
            },
            {
                "name": "soak-claude",
                "routing": once,
                "deployments": [{"provider": "anthropic", "base_url": mock.base_url}],
            },
            {
                "name": "soak-inproc",
                "routing": once,
                "deployments": [{"provider": "mock", "mock": inproc}],
            },
        ],
    }


@dataclass(frozen=True, slots=True)
class Call:
    """One request of the mix."""

    path: str
    body: bytes
    headers: dict[str, str]
    stream: bool
    abandon: bool


class Mix:
    """The seeded traffic mix: dialect x model x stream, with a share of faults."""

    def __init__(self, key: str, fault_share: float, seed: int) -> None:
        self._key = key
        self._fault_share = fault_share
        self._rng = random.Random(seed)

    def next(self) -> Call:
        rng = self._rng
        anthropic = rng.random() < 0.5
        stream = rng.random() < 0.5
        prompt = f"mock:words {rng.randint(5, 60)}"
        if rng.random() < self._fault_share:
            prompt = f"mock:fault {rng.choice(FAULTS)}"
        body: dict[str, Any] = {
            "model": rng.choice(MODELS),
            "messages": [{"role": "user", "content": prompt}],
            "stream": stream,
        }
        if anthropic:
            body["max_tokens"] = 256
            headers = {"x-api-key": self._key, "anthropic-version": "2023-06-01"}
            path = "/v1/messages"
        else:
            headers = {"authorization": f"Bearer {self._key}"}
            path = "/v1/chat/completions"
        headers["content-type"] = "application/json"
        abandon = stream and rng.random() < 0.02
        return Call(path, orjson.dumps(body), headers, stream, abandon)


@dataclass(slots=True)
class Sample:
    """The gateway's footprint at one moment."""

    at_seconds: float
    rss_mb: float
    open_fds: int
    asyncio_tasks: int
    cpu_seconds: float


def asyncio_tasks(gateway: Server) -> int:
    with urllib.request.urlopen(f"{gateway.base_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("relaygate_asyncio_tasks "):
            return int(float(line.split()[1]))
    raise BenchError("the gateway's /metrics has no relaygate_asyncio_tasks gauge")


def sample(gateway: Server, started: float) -> Sample:
    """Read RSS, fds and CPU from /proc and the task gauge from /metrics."""
    tasks = asyncio_tasks(gateway)  # first: the scrape's own socket is closed before fds are read
    fds = len(os.listdir(f"/proc/{gateway.pid}/fd"))
    return Sample(
        round(time.monotonic() - started, 1),
        rss_mb(gateway.pid),
        fds,
        tasks,
        cpu_seconds(gateway.pid),
    )


async def _send(session: aiohttp.ClientSession, base: str, call: Call) -> str:
    try:
        async with session.post(base + call.path, data=call.body, headers=call.headers) as resp:
            if call.abandon:
                await resp.content.readany()
                resp.close()
                return "abandoned"
            await resp.read()
            return str(resp.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


async def drive(
    gateway: Server, mix: Mix, rate: float, seconds: float, every: float, started: float
) -> tuple[Counter[str], list[Sample]]:
    """Open loop for ``seconds``; a footprint sample every ``every`` seconds meanwhile."""
    outcomes: Counter[str] = Counter()
    sampled: list[asyncio.Future[Sample]] = []
    pending: set[asyncio.Task[str]] = set()

    def done(task: asyncio.Task[str]) -> None:
        pending.discard(task)
        outcomes[task.result()] += 1

    loop = asyncio.get_running_loop()
    async with new_session() as session:
        begin = time.perf_counter() + 0.01
        next_sample = begin + every
        for i in range(max(1, int(rate * seconds))):
            due = begin + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= next_sample:
                # In a thread, not awaited here: the schedule must not wait for a sample.
                sampled.append(loop.run_in_executor(None, sample, gateway, started))
                next_sample += every
            task = asyncio.create_task(_send(session, gateway.base_url, mix.next()))
            pending.add(task)
            task.add_done_callback(done)
        await asyncio.gather(*pending)
    return outcomes, list(await asyncio.gather(*sampled))


def _growth(start: float, end: float) -> float:
    return 100.0 * (end - start) / start if start else float("inf") if end else 0.0


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    servers: list[Server] = []
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    try:
        mock = start_mock("mock", workdir, MOCK_OPTIONS)
        servers.append(mock)
        config = workdir / "relaygate.yaml"
        config.write_text(yaml.safe_dump(gateway_config(mock)))
        gateway, key = start_gateway(config, workdir)
        servers.append(gateway)
        mix = Mix(key, args.fault_share, args.seed)
        started = time.monotonic()
        run_async(drive(gateway, mix, args.rate, args.warmup, args.warmup + 1, started))
        time.sleep(SETTLE_SECONDS)
        first = sample(gateway, started)
        coro = drive(gateway, mix, args.rate, args.seconds, args.sample_every, started)
        outcomes, under_load = run_async(coro)
        time.sleep(SETTLE_SECONDS)
        last = sample(gateway, started)
        gateway.check_alive()
    finally:
        for server in reversed(servers):
            server.stop()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    growth = {
        "rss_mb": _growth(first.rss_mb, last.rss_mb),
        "open_fds": _growth(first.open_fds, last.open_fds),
        "asyncio_tasks": _growth(first.asyncio_tasks, last.asyncio_tasks),
    }
    # Settling (allocator arenas, caches filling) shows early and stops; a leak keeps going.
    middle = under_load[len(under_load) // 2] if under_load else first
    return {
        "setup": {
            "seconds": args.seconds,
            "rate_per_s": args.rate,
            "warmup_seconds": args.warmup,
            "fault_share": args.fault_share,
            "seed": args.seed,
            "mock": MOCK_OPTIONS,
            "cpus": os.cpu_count(),
            "loadavg_before": " ".join(load_before),
            "loadavg_after": " ".join(load_after),
        },
        "requests": sum(outcomes.values()),
        "outcomes": dict(sorted(outcomes.items())),
        "start": asdict(first),
        "end": asdict(last),
        "under_load": [asdict(s) for s in under_load],
        "growth_percent": growth,
        "rss_growth_second_half_percent": _growth(middle.rss_mb, last.rss_mb),
        "gateway_cpu_seconds": last.cpu_seconds - first.cpu_seconds,
        "meets_target": all(g < GROWTH_TARGET_PERCENT for g in growth.values()),
    }


def render(result: dict[str, Any]) -> str:
    """A short table for the terminal."""
    setup, first, last = result["setup"], result["start"], result["end"]
    lines = [
        f"soak: {setup['seconds']:.0f} s at {setup['rate_per_s']:g} req/s after a "
        f"{setup['warmup_seconds']:.0f} s warm-up, {setup['fault_share']:.0%} faults; "
        f"{setup['cpus']} CPUs, load average {setup['loadavg_before']} before, "
        f"{setup['loadavg_after']} after",
        f"requests: {result['requests']:,}  outcomes: {result['outcomes']}",
        f"gateway CPU over the run: {result['gateway_cpu_seconds']:.1f} s",
        f"{'':<16}{'start':>10}{'end':>10}{'growth':>10}",
    ]
    for name, label in (
        ("rss_mb", "RSS MiB"),
        ("open_fds", "open fds"),
        ("asyncio_tasks", "asyncio tasks"),
    ):
        lines.append(
            f"{label:<16}{first[name]:>10.1f}{last[name]:>10.1f}"
            f"{result['growth_percent'][name]:>+9.1f}%"
        )
    trend = ", ".join(
        f"{s['at_seconds']:.0f}s {s['rss_mb']:.1f}/{s['open_fds']}/{s['asyncio_tasks']}"
        for s in result["under_load"]
    )
    lines.append(f"under load (RSS MiB/fds/tasks): {trend}")
    lines.append(
        "RSS growth over the second half (a leak keeps growing, settling stops): "
        f"{result['rss_growth_second_half_percent']:+.1f}%"
    )
    verdict = "met" if result["meets_target"] else "MISSED"
    lines.append(f"growth target < {GROWTH_TARGET_PERCENT:g}% for each: {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return run_once("soak", build_parser().parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
