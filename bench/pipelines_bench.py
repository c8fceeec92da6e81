"""Extraction pipelines end to end: events accepted -> results committed, with a zero-latency
in-process mock: one `relaygate serve` on SQLite, or with ``--postgres URL`` a `relaygate serve`
plus a `relaygate worker` (two worker processes) sharing a fresh schema of that database.

    .venv/bin/python -m bench.pipelines_bench [--events 2000] [--senders 16] [--postgres URL]
    .venv/bin/python -m bench.pipelines_bench --kill-run --events 10000 --postgres URL

Reports jobs per second (first event sent -> last result committed), the event acceptance (the
202) latency percentiles while jobs run, and the gateway's CPU milliseconds per job (its CPU time
over the run / jobs; it does both the HTTP intake and the workers' model calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from bench.procs import (
    _RELAYGATE,
    Server,
    _read_key,
    free_port,
    spawn,
    start_gateway,
    wait_ready,
)
from bench.stats import summarize_ms

ORDER = {"order_id": "A-1", "items": [{"sku": "apple", "qty": 2}]}


def write_config(
    path: Path,
    concurrency: int,
    *,
    latency_ms: float = 0.0,
    pipeline_options: dict[str, Any] | None = None,
) -> Path:
    mock = {"provider": "mock", "mock": {"latency_ms": latency_ms}}
    config: dict[str, Any] = {
        "log_level": "warning",
        "models": [{"name": "mock-zero", "deployments": [mock]}],
        "accounting": {"pricing": {"mock-zero": {"input": 1.0, "output": 2.0}}},
        "pipelines": [
            {
                "name": "bench",
                "model": "mock-zero",
                "prompt": "Extract the order as JSON. Message: {{ content }}",
                "schema": {"type": "object", "required": ["order_id", "items"]},
                "concurrency": concurrency,
                **(pipeline_options or {}),
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


COUNT_SUCCEEDED = "SELECT count(*) FROM pipeline_jobs WHERE status = 'succeeded'"


def succeeded_sqlite(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return int(conn.execute(COUNT_SUCCEEDED).fetchone()[0])


def succeeded_postgres(url: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(COUNT_SUCCEEDED))
        finally:
            await conn.close()

    return asyncio.run(count())


async def postgres_schema(server_url: str, name: str, create: bool) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        verb = f'CREATE SCHEMA "{name}"' if create else f'DROP SCHEMA "{name}" CASCADE'
        await conn.execute(verb)
    finally:
        await conn.close()


def start_postgres_pair(config: Path, workdir: Path, url: str) -> tuple[list[Server], str]:
    """`relaygate serve` (intake + in-process workers) and one `relaygate worker`."""
    port = free_port()
    common = ["--config", str(config), "--home", str(workdir / "home"), "--database-url", url]
    gateway = spawn("gateway", [*_RELAYGATE, "serve", "--port", str(port), *common], workdir, port)
    wait_ready(gateway, "/healthz")
    key = _read_key(gateway)
    return [gateway, start_worker("worker", config, workdir, url)], key


def start_worker(name: str, config: Path, workdir: Path, url: str) -> Server:
    """A `relaygate worker` process sharing the gateway's config, home and database."""
    common = ["--config", str(config), "--home", str(workdir / "home"), "--database-url", url]
    return spawn(name, [*_RELAYGATE, "worker", *common], workdir, 0)


async def send_events(
    base: str, key: str, events: int, senders: int, rate: float | None = None
) -> list[float]:
    """Each event's acceptance latency. With ``rate``, event i is due ``i / rate`` seconds after
    the start and its latency counts from then (a sender running late adds its lateness), so a
    slow server cannot hide behind slower sending; without, the senders send back to back."""
    content = f"Order from Ann. mock:extract plain {json.dumps(ORDER)}"
    headers = {"authorization": f"Bearer {key}"}
    latencies: list[float] = []
    next_id = iter(range(events))
    start = time.perf_counter()

    async def sender(session: aiohttp.ClientSession) -> None:
        for i in next_id:
            body = {"event_id": f"ev-{i}", "data": {"content": content}}
            started = time.perf_counter()
            if rate is not None:
                started = start + i / rate
                await asyncio.sleep(max(0.0, started - time.perf_counter()))
            async with session.post(f"{base}/v1/pipelines/bench/events", json=body) as r:
                await r.read()
                if r.status != 202:
                    raise RuntimeError(f"event {i}: HTTP {r.status}")
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(*(sender(session) for _ in range(senders)))
    return latencies


def run(
    events: int,
    senders: int,
    concurrency: int,
    keep: bool,
    postgres: str | None,
    rate: float | None = None,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-pipelines-bench-"))
    config = write_config(workdir / "config.yaml", concurrency)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    if postgres is not None:
        asyncio.run(postgres_schema(postgres, schema, create=True))
        url = f"{postgres}?search_path={schema}"
        servers, key = start_postgres_pair(config, workdir, url)
        count: Callable[[], int] = lambda: succeeded_postgres(url)  # noqa: E731
    else:
        gateway, key = start_gateway(config, workdir)
        servers = [gateway]
        count = lambda: succeeded_sqlite(workdir / "relaygate.db")  # noqa: E731
    try:
        cpu_before = sum(s.cpu_seconds() for s in servers)
        started = time.perf_counter()
        latencies = asyncio.run(send_events(servers[0].base_url, key, events, senders, rate))
        accepted = time.perf_counter() - started
        while (done := count()) < events:
            for server in servers:
                server.check_alive()
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {done} of {events} jobs succeeded in 600 s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = sum(s.cpu_seconds() for s in servers) - cpu_before
    finally:
        for server in servers:
            server.stop()
        if postgres is not None:
            asyncio.run(postgres_schema(postgres, schema, create=False))
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "store": "postgres, 2 worker processes" if postgres else "sqlite, one process",
        "events": events,
        "senders": senders,
        "offered_events_per_second": rate,
        "pipeline_concurrency": concurrency,
        "jobs_per_second": events / elapsed,
        "seconds": elapsed,
        "accept_seconds": accepted,
        "accept_ms": summarize_ms(latencies),
        "gateway_cpu_ms_per_job": cpu / events * 1000,
        "workdir": str(workdir) if keep else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument(
        "--rate", type=float, help="events per second offered (default: as fast as accepted)"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="the pipeline's concurrency")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--postgres", help="postgresql://... server (a fresh schema is used)")
    parser.add_argument(
        "--kill-run",
        action="store_true",
        help="the exactly-once check instead (PostgreSQL; see bench/pipelines_killrun.py)",
    )
    parser.add_argument("--kills", type=int, default=2, help="workers SIGKILLed in a kill run")
    args = parser.parse_args()
    if args.kill_run:
        from bench.pipelines_killrun import print_report, run_kill

        if args.postgres is None:
            parser.error("--kill-run needs --postgres")
        sys.exit(
            0
            if print_report(run_kill(args.postgres, args.events, kills=args.kills, keep=args.keep))
            else 1
        )
    result = run(args.events, args.senders, args.concurrency, args.keep, args.postgres, args.rate)
    accept = result["accept_ms"]
    rate, cpu = result["jobs_per_second"], result["gateway_cpu_ms_per_job"]
    offered = f" offered at {args.rate:g}/s" if args.rate else ""
    print(
        f"{result['store']}: {result['events']} events{offered} -> {rate:.0f} jobs/s end to end "
        f"({result['seconds']:.1f} s); gateway CPU {cpu:.2f} ms/job; "
        f"202 p50 {accept['p50']:.1f} ms, p99 {accept['p99']:.1f} ms"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
