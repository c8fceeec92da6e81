"""Surge benchmark: open-loop load stepping from a baseline to a flash-sale peak.

One mock upstream (``--latency-ms`` 50, at most ``--upstream-concurrency`` 500 requests in flight,
429 beyond), one gateway in front of it whose deployment cap matches the upstream's account, and
an open-loop generator in its own process: request ``i`` of a phase is due at ``start + i / rate``
whatever the answers do, and every latency is measured from that due time (no coordinated
omission). One request in ``--high-every`` uses a priority-10 key, the others a priority-0 key.

Reported per phase: offered and admitted throughput, p50/p99 of admitted (200) requests against
the baseline, p50/p99 time to a 429 for refused ones, the high-priority success rate, the
generator's own lateness, gateway peak RSS and CPU, and whether every process stayed up. On a
2-core machine the generator, the mock and the gateway share the cores: compare ratios.

    python -m bench.surge_bench                       # 200 -> 8,000 req/s for 10 s
    python -m bench.surge_bench --peak 2000 --upstream-concurrency 50   # scaled to the machine
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from bench.procs import (
    Server,
    create_key,
    process_tree,
    rss_mb,
    start_gateway,
    start_mock,
    tree_cpu_seconds,
)
from bench.stats import percentile

RESULTS = Path(__file__).with_name("results")
MODEL = "surge"
GENERATOR_FULL = -2  # status of a request the generator had no connection left to send
# The flash-sale surge's promise: a refused request gets its 429 within this many ms. The queue's
# wait cap counts from a lower key's arrival at the handler and must leave room for what the
# gate's clock does not see (the timer's lateness, the protocol before the handler, the 429's
# write): ``--max-wait-ms`` defaults to 2 ms below the promise (see bench/README.md).
REFUSAL_PROMISE_MS = 10.0
# (due offset s, latency s, status, high priority, send lag s) per request
Sample = tuple[float, float, int, bool, float]


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time, parsed by hand."""

    live = 0  # connections open in this (generator) process

    def __init__(self, idle: list[_Conn]) -> None:
        self._idle = idle
        self._buf = bytearray()
        self._need: int | None = None
        self._status = 0
        self._meta: tuple[list[Sample], float, float, bool, float] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _Conn.live += 1
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def send(
        self, payload: bytes, phase: list[Sample], start: float, due: float, high: bool
    ) -> None:
        self._meta = (phase, start, due, high, time.perf_counter() - due)
        assert self.transport is not None
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._need is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            # Through the head's last CRLF, so that a last header's value ends at a CRLF too.
            head = bytes(self._buf[: end + 2]).lower()
            self._status = int(head[9:12])
            at = head.find(b"content-length:")
            if at >= 0:
                self._need = end + 4 + int(head[at + 15 : head.find(b"\r\n", at)].strip() or 0)
            else:  # chunked: the body ends with the zero-length chunk
                self._need = -(end + 2)
        if self._need < 0:
            last = self._buf.find(b"\r\n0\r\n\r\n", -self._need)
            if last < 0:
                return
            self._need = last + 7
        if len(self._buf) >= self._need:
            del self._buf[: self._need]
            self._need = None
            self._done(self._status)
            self._idle.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        _Conn.live -= 1
        if self._meta is not None:
            self._done(0)
        if self in self._idle:
            self._idle.remove(self)

    def _done(self, status: int) -> None:
        meta, self._meta = self._meta, None
        if meta is not None:
            phase, start, due, high, lag = meta
            phase.append((due - start, time.perf_counter() - due, status, high, lag))


def _payload(port: int, key: str) -> bytes:
    body = orjson.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _generate(spec: dict[str, Any]) -> tuple[list[list[Sample]], list[float]]:
    """Run every phase open loop; the samples of each phase and its start (wall clock)."""
    loop = asyncio.get_running_loop()
    idle: list[_Conn] = []
    phases: list[list[Sample]] = []
    starts: list[float] = []
    low, high = _payload(spec["port"], spec["low_key"]), _payload(spec["port"], spec["high_key"])

    async def connect() -> _Conn:
        _, conn = await loop.create_connection(lambda: _Conn(idle), "127.0.0.1", spec["port"])
        return conn

    opened = [0]

    async def open_and_send(payload: bytes, phase: list[Sample], start: float, due: float) -> None:
        opened[0] += 1
        try:
            conn = await connect()
        except OSError:
            phase.append((due - start, time.perf_counter() - due, -1, payload is high, 0.0))
            return
        finally:
            opened[0] -= 1
        conn.send(payload, phase, start, due, payload is high)

    for _ in range(spec["connections"]):  # a warm pool, opened before the clock starts
        idle.append(await connect())
    pending: set[asyncio.Task[None]] = set()
    for rate, seconds in spec["phases"]:
        pending = {task for task in pending if not task.done()}
        samples: list[Sample] = []
        phases.append(samples)
        start = time.perf_counter() + 0.05
        starts.append(time.time() + 0.05)
        total = int(rate * seconds)
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            payload = high if i % spec["high_every"] == 0 else low
            if idle:
                idle.pop().send(payload, samples, start, due, payload is high)
            elif _Conn.live + opened[0] < spec["max_connections"]:
                pending.add(loop.create_task(open_and_send(payload, samples, start, due)))
            else:  # the generator itself is out of connections: not the gateway's doing
                samples.append((due - start, 0.0, GENERATOR_FULL, payload is high, 0.0))
        deadline = time.perf_counter() + spec["drain_seconds"]
        # Answers arrive through protocol callbacks: poll the count rather than wire an event.
        while len(samples) < total and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return phases, starts


def generator_main(spec_path: str, out_path: str) -> None:
    """Entry of the generator process: read the spec, run, write the samples."""
    import uvloop

    spec = json.loads(Path(spec_path).read_text())
    phases, starts = uvloop.run(_generate(spec))
    Path(out_path).write_bytes(orjson.dumps({"phases": phases, "starts": starts}))
    os._exit(0)  # skip closing thousands of sockets one by one


def _config(mock_port: int, args: argparse.Namespace) -> str:
    limits: dict[str, Any] = {"queue": {"max_wait_seconds": args.max_wait_ms / 1000}}
    reserve: dict[str, float] = {}
    if args.reserve_max_share is not None:
        reserve["max_share"] = args.reserve_max_share
    if args.protected_max_wait_ms is not None:
        reserve["max_wait_seconds"] = args.protected_max_wait_ms / 1000
    if reserve:
        limits["priority_reserve"] = reserve
    if args.adaptive:
        limits["adaptive"] = {
            "enabled": True,
            "initial_limit": min(100, args.upstream_concurrency),
            "max_limit": args.upstream_concurrency,
            "min_limit": 4,
        }
    config = {
        "log_level": "warning",
        "key_cache_refresh_seconds": 0.2,
        "limits": limits,
        "models": [
            {
                "name": MODEL,
                "deployments": [
                    {
                        "provider": "openai",
                        "name": "surge-upstream",
                        "base_url": f"http://127.0.0.1:{mock_port}/v1",
                        "max_concurrency": args.upstream_concurrency,
                        "timeouts": {"connect": 2, "first_byte": 10, "total": 15},
                    }
                ],
            }
        ],
    }
    return json.dumps(config)


def _create_key(workdir: Path, name: str, priority: int) -> str:
    return create_key(workdir, name, "--priority", str(priority))


# In flight now on the deployment's shared buckets: every lease, and the unprotected ones (the
# reserve's open bucket), counting only leases not yet expired (the server's clock).
_OCCUPANCY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
return {redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf'),
        redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')}
"""


class Occupancy:
    """Samples the shared limiter's slots in flight (all, unprotected) every ``period`` s, in a
    thread of the bench's parent process, for the diagnosis of high-priority refusals."""

    def __init__(self, url: str, deployment: str, period: float = 0.002) -> None:
        import redis

        self._client = redis.Redis.from_url(url)
        self._keys = [f"rg:{{lim}}:d:{deployment}:conc", f"rg:{{lim}}:d:{deployment}:conc:open"]
        self._script = self._client.register_script(_OCCUPANCY)
        self._period = period
        self._stop = threading.Event()
        self.samples: list[tuple[float, int, int]] = []  # (wall clock, all, unprotected)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            total, unprotected = self._script(keys=self._keys)
            self.samples.append((time.time(), int(total), int(unprotected)))

    def at(self, when: float) -> tuple[int, int] | None:
        """The last sample at or before ``when``."""
        import bisect

        i = bisect.bisect_right(self.samples, (when, 1 << 30, 1 << 30)) - 1
        return self.samples[i][1:] if i >= 0 else None

    def summary(self, start: float, seconds: float, cap: int) -> dict[str, Any]:
        inside = [s for s in self.samples if start <= s[0] < start + seconds]
        if not inside:
            return {}
        count = len(inside)
        return {
            "samples": count,
            "full_share": _r(sum(1 for _, total, _ in inside if total >= cap) / count, 3),
            "unprotected": _spread([u for _, _, u in inside]),
            "protected": _spread([total - u for _, total, u in inside]),
        }


def _spread(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean": _r(sum(ordered) / len(ordered)),
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)],
        "max": ordered[-1],
    }


def _high_refusals(
    samples: list[Sample], start: float, occupancy: Occupancy | None, cap: int
) -> dict[str, Any]:
    """Each refused or failed high-priority request: when in the phase, how long it took, and
    the shared slots in flight (all, unprotected) when it was due and when it was answered."""
    failed = [s for s in samples if s[3] and s[2] != 200]
    rows = []
    for due, latency, status, _, _ in failed[:40]:
        row: dict[str, Any] = {"at_s": _r(due, 3), "ms": _r(latency * 1000), "status": status}
        if occupancy is not None:
            row["slots_due"] = occupancy.at(start + due)
            row["slots_answered"] = occupancy.at(start + due + latency)
            window = [s for s in occupancy.samples if start + due <= s[0] <= start + due + latency]
            row["free_seen"] = sum(1 for _, total, _ in window if total < cap)
            row["window_samples"] = len(window)
        rows.append(row)
    return {"count": len(failed), "first": rows}


def _watch(gateway: Server, generator: subprocess.Popen[bytes]) -> dict[str, float]:
    """Sample the gateway's RSS (all its processes) until the generator exits."""
    peak, samples = 0.0, 0
    while generator.poll() is None:
        try:
            peak = max(peak, sum(rss_mb(p) for p in process_tree(gateway.pid)))
        except (FileNotFoundError, ProcessLookupError):
            break
        samples += 1
        time.sleep(0.1)
    return {"peak_rss_mb": round(peak, 1), "rss_samples": samples}


def _summary(samples: list[Sample], rate: float, seconds: float) -> dict[str, Any]:
    ok = sorted(s[1] * 1000 for s in samples if s[2] == 200)
    refused = sorted(s[1] * 1000 for s in samples if s[2] == 429)
    highs = [s for s in samples if s[3]]
    unsent = sum(1 for s in samples if s[2] == GENERATOR_FULL)
    other = sum(1 for s in samples if s[2] not in (200, 429, GENERATOR_FULL))
    lags = sorted(s[4] * 1000 for s in samples if s[2] != GENERATOR_FULL)
    return {
        "offered_rps": rate,
        "sent": len(samples) - unsent,
        "not_sent_generator_out_of_connections": unsent,
        "admitted_rps": round(len(ok) / seconds, 1),
        "admitted": len(ok),
        "refused_429": len(refused),
        "other_errors": other,
        "admitted_ms": {"p50": _r(percentile(ok, 50)), "p99": _r(percentile(ok, 99))},
        "refused_ms": {"p50": _r(percentile(refused, 50)), "p99": _r(percentile(refused, 99))},
        "refused_over_promise": sum(1 for ms in refused if ms > REFUSAL_PROMISE_MS),
        "high_priority_success": _r(sum(s[2] == 200 for s in highs) / max(1, len(highs)), 4),
        "generator_lag_ms": {"p50": _r(percentile(lags, 50)), "p99": _r(percentile(lags, 99))},
    }


def _r(value: float, digits: int = 2) -> float:
    return round(value, digits) if value == value else float("nan")


def _metrics(gateway: Server) -> dict[str, float]:
    wanted = (
        "relaygate_admission_decisions_total",
        "relaygate_admission_protected_refusals_total",
        "relaygate_adaptive_concurrency_limit",
        "relaygate_shed_requests_total",
        "relaygate_event_loop_lag_seconds",
    )
    with urllib.request.urlopen(f"{gateway.base_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith(wanted):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the processes, run the phases, return the report."""
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-surge-"))
    mock = start_mock(
        "mock",
        workdir,
        {"latency-ms": args.latency_ms, "max-concurrency": args.upstream_concurrency},
    )
    config = workdir / "surge.yaml"
    config.write_text(_config(mock.port, args))
    if args.workers > 1:
        os.environ.update(RELAYGATE_WORKERS=str(args.workers), RELAYGATE_REDIS_URL=args.redis_url)
    gateway, _ = start_gateway(config, workdir)
    try:
        spec = {
            "port": gateway.port,
            "low_key": _create_key(workdir, "surge-low", 0),
            "high_key": _create_key(workdir, "surge-high", 10),
            "high_every": args.high_every,
            "connections": args.connections,
            "max_connections": args.max_connections,
            "drain_seconds": 16.0,
            "phases": [
                [args.base, args.base_seconds],
                [args.peak, args.peak_seconds],
                [args.base, args.recover_seconds],
            ],
        }
        time.sleep(1.0)  # the new keys reach the gateway's key cache
        cpu_before = tree_cpu_seconds(gateway.pid)
        spec_path, out_path = workdir / "spec.json", workdir / "samples.json"
        spec_path.write_text(json.dumps(spec))
        occupancy = None
        if args.workers > 1 and args.slots_sampler:
            occupancy = Occupancy(args.redis_url, "surge-upstream")
            occupancy.start()
        code = "import sys; from bench.surge_bench import generator_main as g; g(*sys.argv[1:])"
        generator = subprocess.Popen([sys.executable, "-c", code, str(spec_path), str(out_path)])
        watched = _watch(gateway, generator)
        generator.wait()
        if occupancy is not None:
            occupancy.stop()
        alive = gateway.proc.poll() is None and mock.proc.poll() is None
        cpu = tree_cpu_seconds(gateway.pid) - cpu_before if alive else float("nan")
        generated = orjson.loads(out_path.read_bytes())
        phases, starts = generated["phases"], generated["starts"]
        names = ("baseline", "peak", "recovery")
        report: dict[str, Any] = {
            "setup": {
                "cores": os.cpu_count(),
                "workers": args.workers,
                "upstream_latency_ms": args.latency_ms,
                "upstream_concurrency": args.upstream_concurrency,
                "max_wait_ms": args.max_wait_ms,
                "protected_max_wait_ms": args.protected_max_wait_ms,
                "adaptive": args.adaptive,
            },
            "phases": {
                name: _summary(samples, rate, seconds)
                for name, samples, (rate, seconds) in zip(
                    names, phases, spec["phases"], strict=True
                )
            },
            "gateway": {**watched, "cpu_seconds": round(cpu, 2), "stayed_up": alive},
            "metrics": _metrics(gateway) if alive else {},
            "high_priority_failures": {
                name: _high_refusals(samples, start, occupancy, args.upstream_concurrency)
                for name, samples, start in zip(names, phases, starts, strict=True)
            },
        }
        if occupancy is not None:
            report["shared_slots"] = {
                name: occupancy.summary(start, seconds, args.upstream_concurrency)
                for name, start, (_, seconds) in zip(names, starts, spec["phases"], strict=True)
            }
        base, peak = report["phases"]["baseline"], report["phases"]["peak"]
        report["verdict"] = {
            "admitted_p99_vs_baseline": _r(peak["admitted_ms"]["p99"] / base["admitted_ms"]["p99"]),
            "refused_p99_ms": peak["refused_ms"]["p99"],
            "unexplained_errors": sum(p["other_errors"] for p in report["phases"].values()),
        }
    finally:
        gateway.stop()
        mock.stop()
    # Counted after the gateway stopped (its ledger writer flushes on the way out): every
    # request sent was answered, and every answer of a known key is a ledger row. Requests the
    # generator never sent (out of connections, or no connection opened) are not the gateway's.
    unsent = (GENERATOR_FULL, -1)
    sent = sum(1 for phase in phases for sample in phase if sample[2] not in unsent)
    report["ledger"] = _ledger_count(workdir / "relaygate.db", sent)
    return report


def _ledger_count(database: Path, sent: int) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        by_status = dict(db.execute("SELECT status, count(*) FROM usage_ledger GROUP BY status"))
    rows = sum(by_status.values())
    return {"rows": rows, "sent": sent, "missing": sent - rows, "by_status": by_status}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.surge_bench", description=__doc__)
    parser.add_argument("--base", type=float, default=200, help="baseline req/s")
    parser.add_argument("--peak", type=float, default=8000, help="peak req/s")
    parser.add_argument("--base-seconds", type=float, default=5)
    parser.add_argument("--peak-seconds", type=float, default=10)
    parser.add_argument("--recover-seconds", type=float, default=3)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--upstream-concurrency", type=int, default=500)
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=REFUSAL_PROMISE_MS - 2,
        help="limits.queue.max_wait_seconds in ms, from a lower key's arrival (default: 2 ms "
        "below the 10 ms refusal promise, for the timers' lateness and the 429's write)",
    )
    parser.add_argument("--no-adaptive", dest="adaptive", action="store_false")
    parser.add_argument("--high-every", type=int, default=10, help="1 in N requests is high prio")
    parser.add_argument("--connections", type=int, default=200, help="pre-opened connections")
    parser.add_argument("--max-connections", type=int, default=2000, help="generator's cap")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--reserve-max-share",
        type=float,
        default=None,
        help="limits.priority_reserve.max_share (default: the gateway's, 0.5)",
    )
    parser.add_argument(
        "--protected-max-wait-ms",
        type=float,
        default=REFUSAL_PROMISE_MS,
        help="limits.priority_reserve.max_wait_seconds in ms, from the queue (default: 10, what "
        "protected keys had when the queue's cap was 10 ms from the queue)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--no-slots-sampler",
        dest="slots_sampler",
        action="store_false",
        help="with workers, do not sample the shared slots in flight every 2 ms",
    )
    args = parser.parse_args(argv)
    report = run(args)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"surge-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"written to {path}")
    return 0 if report["gateway"]["stayed_up"] else 1


if __name__ == "__main__":
    sys.exit(main())
