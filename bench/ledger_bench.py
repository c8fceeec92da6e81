"""Ledger benchmark: batched write throughput, the request path's cost of accounting, and the
request latency with the ledger on versus off.

1. Throughput: N rows recorded as fast as possible through ``LedgerWriter`` (bounded queue, one
   writer task, batches of ``--batch-size``) into SQLite and PostgreSQL; rows/s until every row is
   in the database.
2. ``Accounting.finish`` per request (price, settle, queue the row), in microseconds.
3. Latency: two gateway processes on the embedded mock (``mock-gpt``: 20 ms upstream), one with
   ``accounting.ledger.enabled: false``, driven alternately at the same fixed open-loop rate
   (below saturation); the gateway's own overhead (``x-relaygate-overhead-ms``) and the client
   latency, p50/p99, their on/off ratios, and gateway CPU per request (``/proc``).

Run: ``.venv/bin/python -m bench.ledger_bench [--rows 100000] [--rate 300] [--json out.json]``.
PostgreSQL (``--postgres``, default the test server) is skipped when unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import orjson
import yaml

from relaygate.accounting import LedgerWriter, SpillFile
from relaygate.settings import load_settings
from relaygate.settings.accounting import LedgerSettings
from relaygate.settings.defaults import EMBEDDED_DEFAULTS
from relaygate.store import LedgerRow, create_ledger_store

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
_KEY = re.compile(r"rg-[A-Za-z0-9_-]{40}")


_RUN = uuid.uuid4().hex[:16]


def sample_row(n: int) -> LedgerRow:
    """A typical row; ids are a run prefix and a counter, as the gateway makes them."""
    return LedgerRow(
        id=f"{_RUN}{n:08x}",
        request_id=f"req_{n:012d}",
        created_at=datetime.now(UTC),
        key_name=f"key-{n % 50}",
        route="openai.chat",
        model_requested="mock-gpt",
        model_used="mock-gpt",
        deployment="mock-gpt#0",
        status=200,
        outcome="ok",
        error_kind=None,
        attempts=1,
        stream=n % 3 == 0,
        input_tokens=120 + n % 50,
        output_tokens=40 + n % 30,
        cache_read_tokens=n % 7,
        cache_write_tokens=0,
        cost_usd=0.00028,
        latency_ms=21.5,
        upstream_ms=20.1,
        ttft_ms=5.0 if n % 3 == 0 else None,
        cache_hit=False,
    )


async def write_throughput(url: str, rows: int, batch_size: int) -> dict[str, float]:
    """Record ``rows`` rows through the writer and time until all are in the database."""
    store = create_ledger_store(url)
    await store.open()
    data = [sample_row(n) for n in range(rows)]
    with tempfile.TemporaryDirectory() as spill_dir:
        settings = LedgerSettings(
            queue_size=rows + 1, batch_size=batch_size, flush_interval_seconds=0.05
        )
        writer = LedgerWriter(store, SpillFile(Path(spill_dir), "spill"), settings)
        await writer.start()
        started = time.perf_counter()
        record_started = time.perf_counter()
        for row in data:
            writer.record(row)
        record_seconds = time.perf_counter() - record_started
        while writer.stats.written < rows:  # noqa: ASYNC110 (polling the writer's counter)
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        await writer.stop()
        stats = writer.stats
    count = await store.count_rows()
    await store.close()
    if count != rows or stats.spilled:
        raise RuntimeError(f"expected {rows} rows, found {count} ({stats.spilled} spilled)")
    return {
        "rows": rows,
        "batch_size": batch_size,
        "rows_per_second": rows / elapsed,
        "record_us_per_row": record_seconds / rows * 1e6,
        "batches": stats.batches,
        "mean_batch_ms": stats.write_seconds / max(1, stats.batches) * 1000,
    }


async def finish_cost(home: Path, calls: int) -> dict[str, float]:
    """Microseconds per ``Accounting.finish`` on a realistic finished request."""
    from relaygate.core.context import RequestContext
    from relaygate.core.types import Usage
    from relaygate.services import build_services

    settings = load_settings(
        None,
        env={},
        overrides={"home": str(home), "database_url": f"sqlite:///{home / 'finish.db'}"},
    )
    services = await build_services(settings)
    accounting = services.accounting
    try:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            for i in range(calls):
                ctx = RequestContext(f"req_{i}", "openai.chat", "openai")
                ctx.key_name, ctx.model_requested, ctx.model_used = (
                    "default",
                    "mock-gpt",
                    "mock-gpt",
                )
                ctx.deployment = "mock-gpt#0"
                ctx.usage = Usage(input_tokens=120, output_tokens=40, cache_read_tokens=8)
                accounting.finish(ctx)
            timings.append((time.perf_counter() - started) / calls * 1e6)
            await asyncio.sleep(0.2)  # let the writer drain between rounds
        base = []
        for _ in range(5):
            started = time.perf_counter()
            for i in range(calls):
                ctx = RequestContext(f"req_{i}", "openai.chat", "openai")
                ctx.key_name, ctx.model_requested, ctx.model_used = (
                    "default",
                    "mock-gpt",
                    "mock-gpt",
                )
                ctx.deployment = "mock-gpt#0"
                ctx.usage = Usage(input_tokens=120, output_tokens=40, cache_read_tokens=8)
            base.append((time.perf_counter() - started) / calls * 1e6)
    finally:
        await services.close()
    return {"finish_us": min(timings) - min(base), "calls": calls}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_gateway(home: Path, ledger_enabled: bool) -> tuple[subprocess.Popen[bytes], str, str]:
    home.mkdir(parents=True, exist_ok=True)
    config = {**EMBEDDED_DEFAULTS, "log_level": "warning"}
    config["accounting"] = {"ledger": {"enabled": ledger_enabled}}
    (home / "relaygate.yaml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (home / "gateway.log").open("wb")
    args = [sys.executable, "-m", "relaygate.cli.main", "serve", "--port", str(port)]
    args += ["--home", str(home), "--config", str(home / "relaygate.yaml")]
    args += ["--database-url", f"sqlite:///{home / 'relaygate.db'}"]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = (home / "gateway.log").read_text(errors="replace")
        key = _KEY.search(text)
        if key and "listening" in text:
            return proc, base, key.group(0)
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited:\n{text}")
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("gateway did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all threads (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    base: str, key: str, model: str, rate: float, seconds: float
) -> dict[str, list[float]]:
    """Open loop: requests start on a fixed schedule, whether or not earlier ones finished;
    latency counts from the scheduled start (no coordinated omission)."""
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    latencies: list[float] = []
    overheads: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(scheduled: float) -> None:
            async with session.post(
                f"{base}/v1/chat/completions", data=body, headers=headers
            ) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}")
                overheads.append(float(response.headers["x-relaygate-overhead-ms"]))
            latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks = []
        started = time.perf_counter()
        for i in range(int(rate * seconds)):
            scheduled = started + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
    return {"latency_ms": latencies, "overhead_ms": overheads}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency_on_off(
    rate: float, seconds: float, rounds: int, model: str = "mock-gpt"
) -> dict[str, Any]:
    """Alternate on/off rounds against two gateways at a fixed rate below saturation; compare
    p50/p99 of the gateway overhead and of the client latency, and CPU per request."""
    with tempfile.TemporaryDirectory() as tmp:
        gateways = {
            name: start_gateway(Path(tmp) / name, enabled)
            for name, enabled in (("on", True), ("off", False))
        }
        results: dict[str, dict[str, list[float]]] = {
            n: {"latency_ms": [], "overhead_ms": [], "cpu_ms": []} for n in gateways
        }
        try:
            for _, base, key in gateways.values():
                await drive(base, key, model, rate, 2.0)  # warm-up
            for _ in range(rounds):
                for name, (proc, base, key) in gateways.items():
                    cpu = _cpu_seconds(proc.pid)
                    got = await drive(base, key, model, rate, seconds)
                    await asyncio.sleep(1.0)  # the ledger's batch writes belong to this run
                    used = _cpu_seconds(proc.pid) - cpu
                    results[name]["cpu_ms"].append(used * 1000 / len(got["latency_ms"]))
                    for metric, values in got.items():
                        results[name][metric] += values
        finally:
            for proc, _, _ in gateways.values():
                proc.terminate()
                proc.wait(15)
    summary: dict[str, Any] = {
        "model": model,
        "rate_per_second": rate,
        "requests_per_side": int(rate * seconds) * rounds,
    }
    for metric in ("overhead_ms", "latency_ms"):
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            on, off = _pct(results["on"][metric], q), _pct(results["off"][metric], q)
            summary[f"{metric}_{label}"] = {"on": on, "off": off, "ratio": on / off}
    on_cpu, off_cpu = (statistics.median(results[s]["cpu_ms"]) for s in ("on", "off"))
    summary["cpu_ms_per_request"] = {"on": on_cpu, "off": off_cpu, "ratio": on_cpu / off_cpu}
    return summary


async def _postgres_schema(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    schema = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.close()
    return schema


async def _drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await conn.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await write_throughput(
            f"sqlite:///{Path(tmp) / 'bench.db'}", args.rows, args.batch_size
        )
        print("sqlite", results["sqlite"], flush=True)
        results["finish"] = await finish_cost(Path(tmp), 20_000)
        print("finish", results["finish"], flush=True)
    schema = await _postgres_schema(args.postgres)
    if schema is not None:
        try:
            url = f"{args.postgres}?search_path={schema}"
            results["postgres"] = await write_throughput(url, args.rows, args.batch_size)
            print("postgres", results["postgres"], flush=True)
        finally:
            await _drop_schema(args.postgres, schema)
    results["latency"] = await latency_on_off(args.rate, args.seconds, args.rounds)
    print("latency", results["latency"], flush=True)
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    cli()
