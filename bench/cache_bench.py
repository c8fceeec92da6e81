"""Response-cache benchmark (issue 11): the hit path against the relayed path, and coalescing.

One gateway, two standalone mocks, all on 127.0.0.1, started here and stopped at the end:

* **Hit path.** The same zero-latency mock behind two models, ``bench-relay`` (cache off) and
  ``bench-hit`` (cache on). ``--clients`` concurrent keep-alive clients send the same
  ``temperature: 0`` request for ``--seconds`` to each model in turn (relay, hit, relay, hit
  for ``--rounds``); after one warm-up request every ``bench-hit`` request is a cache hit.
  Reported per path: req/s and the gateway's own CPU time per request (from ``/proc``).
  Target: a hit costs at most half the gateway CPU of a relayed request.
* **Dedup.** ``--dedup-requests`` requests of which ``--repeat-share`` (34%, the extraction
  pipeline's figure) repeat an earlier one, through ``bench-relay`` and then ``bench-hit``:
  upstream calls (should drop by that share) and the added p50 (target: at most 1 ms), open
  loop at ``--dedup-rate`` req/s (latency from each request's due time), and also closed loop
  at saturation (``--clients``), where p50 is queueing and so shows the extra CPU of a miss.
* **Coalescing.** ``--burst`` identical non-streamed requests, sent open-loop evenly over
  ``--spread-ms`` against a mock answering in ``--latency-ms``. Reported: upstream calls (the
  mock's own count), and each caller's latency from its own send time. Target: 1 upstream call,
  every caller answered within the mock's latency + 5 ms. The burst's connections are opened
  (keep-alive) before it starts, as an SDK's pool would hold them; ``--cold-connections`` opens
  each inside the burst instead. ``--bursts`` of them run one after another; the worst counts.
  The mock's own latency, called directly, is reported beside them.

    python -m bench.cache_bench                  # ~1 minute
    python -m bench.cache_bench --seconds 2 --rounds 1
    python -m bench.cache_bench --parts coalescing --bursts 5

On a shared 2-core machine the clients, the mocks and the gateway share the cores: compare the
two paths' ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.procs import Server, start_gateway, start_mock
from bench.stats import percentile

RELAY_MODEL = "bench-relay"
HIT_MODEL = "bench-hit"
BURST_MODEL = "bench-burst"


def write_config(path: Path, fast: Server, slow: Server) -> Path:
    models = [
        (RELAY_MODEL, fast, False),
        (HIT_MODEL, fast, True),
        (BURST_MODEL, slow, True),
    ]
    lines = ["limits:", "  overload: {enabled: false}", "cache:", "  enabled: false", "  models:"]
    lines += [f"    {name}: {{enabled: {'true' if on else 'false'}}}" for name, _, on in models]
    lines.append("models:")
    for name, mock, _ in models:
        lines += [
            f"  - name: {name}",
            "    deployments:",
            "      - provider: openai",
            f"        name: {name}-dep",
            f"        base_url: {mock.base_url}/v1",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def body(model: str, text: str = "is the coupon still valid?") -> bytes:
    return orjson.dumps(
        {"model": model, "temperature": 0, "messages": [{"role": "user", "content": text}]}
    )


async def closed_loop(url: str, key: str, payload: bytes, clients: int, seconds: float) -> int:
    """Requests completed by ``clients`` keep-alive clients in ``seconds`` (all must be 200)."""
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    done = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                async with session.post(url, data=payload, headers=headers) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"status {answer.status}: {await answer.text()}")
                done += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return done


def hit_path(gateway: Server, key: str, args: argparse.Namespace) -> dict[str, Any]:
    url = f"{gateway.base_url}/v1/chat/completions"
    runs: dict[str, list[dict[str, float]]] = {"relayed": [], "hit": []}
    asyncio.run(closed_loop(url, key, body(HIT_MODEL), 1, 0.01))  # the one miss: now cached
    for _ in range(args.rounds):
        for path, model in (("relayed", RELAY_MODEL), ("hit", HIT_MODEL)):
            cpu = gateway.cpu_seconds()
            started = time.perf_counter()
            count = asyncio.run(closed_loop(url, key, body(model), args.clients, args.seconds))
            elapsed = time.perf_counter() - started
            used = gateway.cpu_seconds() - cpu
            runs[path].append(
                {"requests": count, "rps": count / elapsed, "cpu_ms_per_req": used * 1000 / count}
            )
    summary = {
        path: {
            "rps": percentile(sorted(r["rps"] for r in rounds), 50),
            "cpu_ms_per_req": percentile(sorted(r["cpu_ms_per_req"] for r in rounds), 50),
        }
        for path, rounds in runs.items()
    }
    ratio = summary["hit"]["cpu_ms_per_req"] / summary["relayed"]["cpu_ms_per_req"]
    return {"rounds": runs, "median": summary, "hit_cpu_over_relayed": ratio}


async def burst(url: str, key: str, args: argparse.Namespace) -> list[tuple[int, float]]:
    """(status, latency s from its own send time) of each request of the burst."""
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    payload = body(BURST_MODEL, f"burst {time.time()}")  # new each run: a real miss
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        if args.warm_connections:
            # Keep-alive connections opened before the burst, as an SDK's pool holds them: the
            # figure is then the gateway's, not 500 TCP handshakes' on the generator's core.
            health = url.replace("/v1/chat/completions", "/healthz")
            await asyncio.gather(*(_touch(session, health) for _ in range(args.burst)))
        start = time.perf_counter()
        gap = args.spread_ms / 1000 / max(1, args.burst - 1)

        async def one(index: int) -> tuple[int, float]:
            due = start + index * gap
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent = time.perf_counter()
            async with session.post(url, data=payload, headers=headers) as answer:
                await answer.read()
                return answer.status, time.perf_counter() - sent

        return await asyncio.gather(*(one(i) for i in range(args.burst)))


async def _touch(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(url) as answer:
        await answer.read()


def workload(count: int, repeat_share: float, tag: str, seed: int = 7) -> list[str]:
    """``count`` prompts of which about ``repeat_share`` repeat an earlier one."""
    rng = random.Random(seed)
    prompts: list[str] = []
    for index in range(count):
        if prompts and rng.random() < repeat_share:
            prompts.append(rng.choice(prompts))
        else:
            prompts.append(f"{tag} extraction document {index}")
    return prompts


async def replay(url: str, key: str, model: str, prompts: list[str], clients: int) -> list[float]:
    """Send ``prompts`` in order from ``clients`` workers; each request's latency in ms."""
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    queue = list(reversed(prompts))
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                payload = body(model, queue.pop())
                sent = time.perf_counter()
                async with session.post(url, data=payload, headers=headers) as answer:
                    await answer.read()
                latencies.append((time.perf_counter() - sent) * 1000)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return sorted(latencies)


async def replay_paced(
    url: str, key: str, model: str, prompts: list[str], rate: float
) -> list[float]:
    """Send ``prompts`` open loop, request ``i`` due at ``i / rate`` s; each request's latency in
    ms from its due time (a late send counts against the gateway, not hidden)."""
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()

        async def one(index: int, prompt: str) -> float:
            due = start + index / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            async with session.post(url, data=body(model, prompt), headers=headers) as answer:
                await answer.read()
            return (time.perf_counter() - due) * 1000

        return sorted(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))


def dedup(gateway: Server, key: str, fast: Server, args: argparse.Namespace) -> dict[str, Any]:
    """The same repeating workload through the cache and without it: closed loop at saturation
    (``--clients``; its latency is queueing, so it shows the CPU a miss costs more) and open loop
    at ``--dedup-rate`` (the latency a caller sees added at a moderate rate: the target)."""
    url = f"{gateway.base_url}/v1/chat/completions"
    result: dict[str, Any] = {
        "requests": args.dedup_requests,
        "repeat_share": args.repeat_share,
        "rate": args.dedup_rate,
    }
    for loop in ("saturated", "paced"):
        for label, model in (("cache_off", RELAY_MODEL), ("cache_on", HIT_MODEL)):
            tag = f"{loop}-{label}-{time.time()}"
            prompts = workload(args.dedup_requests, args.repeat_share, tag)
            before = mock_requests(fast)
            if loop == "saturated":
                latencies = asyncio.run(replay(url, key, model, prompts, args.clients))
            else:
                latencies = asyncio.run(replay_paced(url, key, model, prompts, args.dedup_rate))
            result[f"{loop}_{label}"] = {
                "upstream_calls": mock_requests(fast) - before,
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
            }
    calls_off = result["paced_cache_off"]["upstream_calls"]
    calls_on = result["paced_cache_on"]["upstream_calls"]
    result["upstream_drop"] = 1 - calls_on / calls_off if calls_off else None
    for loop in ("saturated", "paced"):
        added = result[f"{loop}_cache_on"]["p50_ms"] - result[f"{loop}_cache_off"]["p50_ms"]
        result[f"{loop}_added_p50_ms"] = added
    return result


def mock_requests(mock: Server) -> int:
    with urllib.request.urlopen(f"{mock.base_url}/mock/stats", timeout=5) as answer:
        return int(json.load(answer)["requests"])


async def direct(url: str, count: int) -> list[float]:
    """Latency in ms of ``count`` requests, one at a time, straight to the mock at ``url``."""
    latencies = []
    async with aiohttp.ClientSession() as session:
        for index in range(count):
            sent = time.perf_counter()
            async with session.post(url, data=body(BURST_MODEL, f"direct {index}")) as answer:
                await answer.read()
            latencies.append((time.perf_counter() - sent) * 1000)
    return latencies


def coalescing(gateway: Server, key: str, slow: Server, args: argparse.Namespace) -> dict[str, Any]:
    """``--bursts`` bursts one after another (each a new prompt: a real miss); the worst counts."""
    url = f"{gateway.base_url}/v1/chat/completions"
    # What the mock itself takes on this machine (its timer and its write), for reading the
    # bursts' figures: the budget is counted from the configured latency, not from this.
    mock_alone = sorted(asyncio.run(direct(f"{slow.base_url}/v1/chat/completions", 5)))
    bursts: list[dict[str, Any]] = []
    for _ in range(args.bursts):
        before = mock_requests(slow)
        results = asyncio.run(burst(url, key, args))
        latencies = sorted(seconds * 1000 for _, seconds in results)
        bursts.append(
            {
                "requests": len(results),
                "ok": sum(status == 200 for status, _ in results),
                "upstream_calls": mock_requests(slow) - before,
                "latency_ms": {
                    "p50": percentile(latencies, 50),
                    "p99": percentile(latencies, 99),
                    "max": max(latencies),
                },
            }
        )
        time.sleep(1.0)
    # The same bursts straight to the mock (500 upstream calls, no gateway): what the generator
    # itself adds when 500 answers arrive together, which the one-at-a-time figure cannot show.
    mock_bursts: list[float] = []
    for _ in range(args.bursts):
        results = asyncio.run(burst(f"{slow.base_url}/v1/chat/completions", "direct", args))
        mock_bursts.append(max(seconds * 1000 for _, seconds in results))
        time.sleep(1.0)
    return {
        "bursts": bursts,
        "worst_max_ms": max(b["latency_ms"]["max"] for b in bursts),
        "most_upstream_calls": max(b["upstream_calls"] for b in bursts),
        "budget_ms": args.latency_ms + 5,
        "mock_alone_ms": {"min": mock_alone[0], "max": mock_alone[-1]},
        "mock_burst_worst_ms": mock_bursts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.cache_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--spread-ms", type=float, default=100.0)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--bursts", type=int, default=3, help="coalescing bursts in the run")
    parser.add_argument(
        "--parts",
        default="hit,dedup,coalescing",
        help="comma-separated parts to run (hit, dedup, coalescing)",
    )
    parser.add_argument(
        "--cold-connections",
        dest="warm_connections",
        action="store_false",
        help="open each burst request's connection inside the burst (default: opened before)",
    )
    parser.add_argument("--dedup-requests", type=int, default=1000)
    parser.add_argument("--repeat-share", type=float, default=0.34)
    parser.add_argument("--dedup-rate", type=float, default=200.0, help="open-loop req/s")
    parser.add_argument("--out", type=Path, help="write the JSON record here too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="relaygate-cache-bench-") as tmp:
        workdir = Path(tmp)
        started: list[Server] = []
        try:
            fast = start_mock("mock-fast", workdir, {})
            started.append(fast)
            slow = start_mock("mock-slow", workdir, {"latency-ms": args.latency_ms})
            started.append(slow)
            config = write_config(workdir / "relaygate.yaml", fast, slow)
            gateway, key = start_gateway(config, workdir)
            started.append(gateway)
            parts = set(args.parts.split(","))
            record: dict[str, Any] = {}
            if "hit" in parts:
                record["hit_path"] = hit_path(gateway, key, args)
            if "dedup" in parts:
                record["dedup"] = dedup(gateway, key, fast, args)
            if "coalescing" in parts:
                record["coalescing"] = coalescing(gateway, key, slow, args)
            record["args"] = vars(args) | {"out": str(args.out) if args.out else None}
        finally:
            for server in reversed(started):
                server.stop()
    text = json.dumps(record, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
