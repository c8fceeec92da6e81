"""The surge step in virtual time: each worker's real ``Admitter`` over one shared limit store.

``bench.surge_bench`` on 2 shared cores measures the machine as much as the gateway: the step's
high-priority failures are a handful in 1,200, and other processes' load decides most runs. This
model runs the admission code itself (the reserve, the queue, the claims, the shared limiter's
buckets) with no HTTP and no load: the event loop's clock is virtual (a sleep advances it, so a
run takes as long as its CPU, whatever the machine does), the shared store is a ``MemoryLimiter``
behind a round trip of ``--rtt-ms`` each way, and each worker spends ``--cpu-ms`` of its own time
on every request before admission (its requests queue for it, as on a busy event loop).

The load is surge_bench's: request ``i`` of a phase due at ``start + i / rate`` (plus up to
``--jitter-ms``), one in ``--high-every`` of priority 10, each on one of 200 keep-alive
connections taken last-in first-out from the idle ones, each connection in a worker picked at
random (so the workers' shares of the traffic differ and move, as under the kernel); an admitted
request holds its slot 50 ms times 1 to ``1 + --hold-spread``.

    PYTHONPATH=src:. python -m bench.surge_model --seeds 24       # this tree
    PYTHONPATH=/other/src:. python -m bench.surge_model --seeds 24  # another tree, same model
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import random
import selectors
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from relaygate.admission import Admitter
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.core.context import RequestContext
from relaygate.core.errors import RateLimitedError
from relaygate.core.types import ChatRequest, Message, TextBlock, Usage
from relaygate.limits import MemoryLimiter
from relaygate.limits.limiter import Admission, BucketAsk, BucketSettle, Lease
from relaygate.routing.catalog import build_catalog
from relaygate.settings import Settings
from relaygate.settings.limits import LimitSettings
from relaygate.store.records import KeyRecord
from relaygate.transport.http import HttpTransport

DEPLOYMENT = "surge-0"
CONNECTIONS = 200
# Whether the tree under test's ``Admitter.admit`` counts the wait budget from arrival.
HANDS_ARRIVAL = "spent" in inspect.signature(Admitter.admit).parameters


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _VirtualSelector(selectors.DefaultSelector):
    """Waiting ``timeout`` advances the clock instead of the wall clock."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("the model stalled: nothing is scheduled")
        self._clock.now += max(0.0, timeout)
        return super().select(0)


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        self._virtual = clock
        super().__init__(_VirtualSelector(clock))

    def time(self) -> float:
        return self._virtual.now


class SharedStore:
    """One worker's view of the shared limiter: the store's buckets, one round trip away."""

    backend = "model"

    def __init__(self, store: MemoryLimiter, rtt: float) -> None:
        self._store = store
        self._half = rtt / 2

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission:
        await asyncio.sleep(self._half)
        admission = self._store.acquire_now(asks)
        await asyncio.sleep(self._half)
        return admission

    async def settle(self, settles: Sequence[BucketSettle]) -> None:
        await self.release(None, settles)

    async def release(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
        await asyncio.sleep(self._half)
        self._store.release_now(lease, settles)
        await asyncio.sleep(self._half)

    async def close(self) -> None:
        return None


@dataclass
class Outcome:
    due: float
    high: bool
    admitted: bool
    seconds: float


def _key(name: str, priority: int) -> KeyRecord:
    return KeyRecord(
        id=name,
        name=name,
        key_hash="0" * 64,
        key_prefix="rg-model",
        owner=None,
        team=None,
        allowed_models=(),
        priority=priority,
        rps=None,
        burst=None,
        rpm=None,
        tpm=None,
        max_concurrent=None,
        monthly_budget_usd=None,
        balance_usd=None,
        expires_at=None,
        disabled=False,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


async def _run(seed: int, args: argparse.Namespace, clock: VirtualClock) -> dict[str, Any]:
    rng = random.Random(seed)
    store = MemoryLimiter(clock)
    deployment = {"provider": "mock", "name": DEPLOYMENT, "max_concurrency": args.cap}
    settings = Settings.model_validate({"models": [{"name": "m", "deployments": [deployment]}]})
    catalog = build_catalog(settings, HttpTransport())
    route = catalog.resolve("m")
    config: dict[str, Any] = {"queue": {"max_wait_seconds": args.max_wait_ms / 1e3}}
    if args.protected_max_wait_ms is not None:
        config["priority_reserve"] = {"max_wait_seconds": args.protected_max_wait_ms / 1e3}
    limits = LimitSettings.model_validate(config)
    registries = [CollectorRegistry() for _ in range(args.workers)]
    gates = [
        Admitter(
            limits,
            SharedStore(store, args.rtt_ms / 1e3) if args.workers > 1 else store,
            lookup=catalog.get,
            metrics=AdmissionMetrics(registry),
            workers=args.workers,
            clock=clock,
        )
        for registry in registries
    ]
    for gate in gates:
        gate.start()
    cpus = [asyncio.Lock() for _ in gates]
    low, high = _key("low", 0), _key("high", 10)
    hello = (Message("user", (TextBlock("hi"),)),)
    body = ChatRequest(dialect="openai", model="m", messages=hello, max_tokens=None, raw={})
    conns = [rng.randrange(args.workers) for _ in range(CONNECTIONS)]
    idle = list(range(CONNECTIONS))
    outcomes: list[Outcome] = []
    open_in_flight: list[tuple[float, int]] = []

    def spent(due: float) -> dict[str, float]:
        """``admit``'s ``spent``: the seconds since arrival (a tree before it had none)."""
        return {"spent": clock.now - due} if HANDS_ARRIVAL else {}

    async def one(due: float, is_high: bool) -> None:
        conn = idle.pop() if idle else rng.randrange(CONNECTIONS)
        worker = conns[conn]
        gate = gates[worker]
        try:
            async with cpus[worker]:
                await asyncio.sleep(args.cpu_ms / 1e3)
            try:
                # Its wait budget counts from its arrival, as the handler hands it over.
                ticket = await gate.admit(high if is_high else low, route, body, {}, **spent(due))
            except RateLimitedError:
                outcomes.append(Outcome(due, is_high, False, clock.now - due))
                return
            outcomes.append(Outcome(due, is_high, True, clock.now - due))
            open_in_flight.append((clock.now, store.held(f"d:{DEPLOYMENT}:conc:open")))
            await asyncio.sleep(0.05 * rng.uniform(1.0, 1.0 + args.hold_spread))
            ctx = RequestContext("r", "openai.chat", "openai")
            ctx.usage = Usage(input_tokens=1, output_tokens=1)
            gate.finish(ticket, ctx)
        finally:
            idle.append(conn)

    async def at(due: float, is_high: bool) -> None:
        await asyncio.sleep(due - clock.now)
        await one(due, is_high)

    step = clock.now + 0.01 + args.base_seconds
    tasks = []
    for start, rate, seconds in (
        (step - args.base_seconds, args.base, args.base_seconds),
        (step, args.peak, args.peak_seconds),
    ):
        for i in range(int(rate * seconds)):
            due = start + i / rate + rng.uniform(0, args.jitter_ms / 1e3)
            tasks.append(asyncio.ensure_future(at(due, i % args.high_every == 0)))
    await asyncio.gather(*tasks)
    for gate in gates:
        await gate.close()
    await catalog.close()
    peak = [o for o in outcomes if o.due >= step]
    highs = [o for o in peak if o.high]
    reasons: Counter[str] = Counter()
    for registry in registries:
        for metric in registry.collect():
            if metric.name == "relaygate_admission_protected_refusals":
                for sample in metric.samples:
                    if sample.name.endswith("_total") and sample.value:
                        reasons[sample.labels["result"]] += int(sample.value)
    return {
        "high": len(highs),
        "high_failed": sum(1 for o in highs if not o.admitted),
        "low_admitted": sum(1 for o in peak if not o.high and o.admitted),
        "failed_at_ms": [round((o.due - step) * 1e3) for o in highs if not o.admitted],
        "reasons": dict(reasons),
        "refused_ms": sorted(o.seconds * 1e3 for o in peak if not o.admitted),
        "open_max": max((n for when, n in open_in_flight if when >= step), default=0),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        clock = VirtualClock()
        loop = VirtualLoop(clock)
        try:
            runs.append(loop.run_until_complete(_run(seed, args, clock)))
        finally:
            loop.close()
    refused = sorted(ms for r in runs for ms in r["refused_ms"])
    reasons: Counter[str] = Counter()
    for r in runs:
        reasons.update(r["reasons"])
    high = sum(r["high"] for r in runs)
    failed = sum(r["high_failed"] for r in runs)
    return {
        "setup": {k: v for k, v in vars(args).items() if k != "json"},
        "high_priority": high,
        "high_priority_failed": failed,
        "high_priority_success": round(1 - failed / max(1, high), 5),
        "lower_admitted_per_second": round(
            sum(r["low_admitted"] for r in runs) / max(1, len(runs)) / args.peak_seconds, 1
        ),
        "failed_at_ms": sorted(ms for r in runs for ms in r["failed_at_ms"]),
        "protected_refusals": dict(reasons),
        "refused_p99_ms": round(refused[len(refused) * 99 // 100], 2) if refused else None,
        "refused_p999_ms": round(refused[len(refused) * 999 // 1000], 2) if refused else None,
        "refused_max_ms": round(refused[-1], 2) if refused else None,
        "unprotected_in_flight_max": [r["open_max"] for r in runs],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.surge_model", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=12, help="runs, each with its own seed")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--base", type=float, default=200)
    parser.add_argument("--peak", type=float, default=2000)
    parser.add_argument("--base-seconds", type=float, default=3.0)
    parser.add_argument("--peak-seconds", type=float, default=1.0)
    parser.add_argument("--cap", type=int, default=25, help="the deployment's max_concurrency")
    parser.add_argument("--max-wait-ms", type=float, default=8, help="surge_bench's")
    parser.add_argument(
        "--protected-max-wait-ms",
        type=float,
        default=10,
        help="limits.priority_reserve.max_wait_seconds in ms (default: surge_bench's)",
    )
    parser.add_argument("--high-every", type=int, default=10)
    parser.add_argument("--rtt-ms", type=float, default=0.5, help="to the shared store")
    parser.add_argument("--cpu-ms", type=float, default=0.6, help="per request, per worker")
    parser.add_argument("--hold-spread", type=float, default=0.3)
    parser.add_argument("--jitter-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
