"""Streaming, side by side: the floor relay and gateways from two source trees, one run.

The streaming phase's load (``bench.streaming``: 23-event streams, first event after 50 ms, then
10 ms apart, ``--concurrency`` at a time, workers staggered) against one paced mock, through the
floor relay, the gateway from this checkout and, with ``--other-src DIR``, a gateway from
another checkout's ``src`` (``git archive main src | tar -x -C /tmp/old``). Rounds alternate the
order, so drift on the machine hits every path alike. Per path and round it prints the relay's
CPU ms per stream (its ``/proc`` CPU over the window, settle included, ÷ streams) and TTFT
p50 / p99 minus the direct path's in the same round; then the medians.

    python -m bench.stream_ab [--rounds 4] [--streams 200] [--other-src /tmp/old/src]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.openloop import new_session
from bench.procs import BenchError, Server, create_key, start_floor, start_gateway, start_mock
from bench.reconcile import _sources
from bench.rig import (
    BENCH_KEY_LIMITS,
    SETTLE_S,
    STREAM_MOCK,
    STREAM_MODEL,
    STREAM_PROMPT,
    STREAM_SECONDS,
    chat_body,
    run_async,
    write_config,
)
from bench.stats import median
from bench.streams import StreamsResult, run_streams

PATH = "/v1/chat/completions"


async def _window(
    url: str, headers: dict[str, str], server: Server | None, streams: int, concurrency: int
) -> tuple[StreamsResult, float]:
    body = chat_body(STREAM_MODEL, STREAM_PROMPT, stream=True)
    async with new_session() as session:
        await run_streams(session, url, body, headers, concurrency, concurrency)
        before = server.cpu_seconds() if server is not None else 0.0
        result = await run_streams(
            session, url, body, headers, streams, concurrency, STREAM_SECONDS / concurrency
        )
    await asyncio.sleep(SETTLE_S)  # deferred work (ledger, log) lands in the window
    cpu = server.cpu_seconds() - before if server is not None else 0.0
    return result, 1000.0 * cpu / max(1, len(result.samples))


def run(rounds: int, streams: int, concurrency: int, other_src: Path | None) -> str:
    """Start everything, run the rounds, return the table."""
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-stream-ab-"))
    mock = start_mock("mock-stream", workdir, STREAM_MOCK)
    relays: dict[str, Server] = {}
    keys: dict[str, str] = {}
    try:
        key = ""
        trees: list[tuple[str, Path | None]] = [("gateway (this tree)", None)]
        if other_src is not None:
            trees.append((f"gateway @ {other_src}", other_src))
        for name, src in trees:
            home = workdir / f"gw-{len(relays)}"
            home.mkdir()
            config = write_config(home / "relaygate.yaml", {STREAM_MODEL: mock})
            with _sources(src, {}):
                gw_key = create_key(home, "bench", *BENCH_KEY_LIMITS)
                relays[name], _ = start_gateway(config, home, banner_key=False)
            key = key or gw_key
            relays[name].name = name
            keys[name] = gw_key
        relays["floor"] = start_floor(workdir, [key], {STREAM_MODEL: mock.base_url + "/v1"})
        keys["floor"] = key
        return _rounds(mock, relays, keys, rounds, streams, concurrency)
    finally:
        for server in relays.values():
            server.stop()
        mock.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _rounds(
    mock: Server,
    relays: dict[str, Server],
    keys: dict[str, str],
    rounds: int,
    streams: int,
    concurrency: int,
) -> str:
    names = ["direct", *relays]
    cpu: dict[str, list[float]] = {name: [] for name in relays}
    added: dict[str, list[tuple[float, float]]] = {name: [] for name in relays}
    lines: list[str] = []
    for round_no in range(rounds):
        ttft: dict[str, dict[str, float]] = {}
        for name in names if round_no % 2 == 0 else names[::-1]:
            server = relays.get(name)
            base = server.base_url if server is not None else mock.base_url
            headers = {
                "Authorization": f"Bearer {keys.get(name, 'direct')}",
                "Content-Type": "application/json",
            }
            result, per_stream = run_async(
                _window(base + PATH, headers, server, streams, concurrency)
            )
            if result.errors:
                raise BenchError(f"{name}: {result.errors} failed streams")
            ttft[name] = result.ttft_ms()
            if server is not None:
                cpu[name].append(per_stream)
        for name in relays:
            p50 = ttft[name]["p50"] - ttft["direct"]["p50"]
            p99 = ttft[name]["p99"] - ttft["direct"]["p99"]
            added[name].append((p50, p99))
            lines.append(
                f"  round {round_no + 1} {name:<34}{cpu[name][-1]:>8.3f} ms/stream"
                f"   TTFT +{p50:.2f} / +{p99:.2f} ms"
            )
    floor = median(cpu["floor"])
    lines.append(
        f"  {'median':<42}{'CPU ms/stream':>14}{'/ floor':>9}{'/ floor, by round':>19}"
        "   added TTFT p50 / p99"
    )
    for name in relays:
        mid = median(cpu[name])
        # Each round's own ratio first: drift between rounds cancels within a round.
        paired = median(c / f for c, f in zip(cpu[name], cpu["floor"], strict=True))
        p50 = median(a[0] for a in added[name])
        p99 = median(a[1] for a in added[name])
        lines.append(
            f"  {name:<42}{mid:>14.3f}{mid / floor:>8.2f}x{paired:>18.2f}x"
            f"   +{p50:.2f} / +{p99:.2f}"
        )
    gateways = [name for name in relays if name != "floor"]
    if len(gateways) == 2:
        new, old = (cpu[name] for name in gateways)
        differences = [n - o for n, o in zip(new, old, strict=True)]
        cheaper = sum(1 for d in differences if d < 0)
        lines.append(
            f"  this tree minus the other, by round: median {median(differences):+.3f} ms/stream,"
            f" cheaper in {cheaper} of {len(differences)} rounds"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; 1 when the processes could not run."""
    parser = argparse.ArgumentParser(prog="python -m bench.stream_ab", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--other-src", type=Path, help="also run a gateway from this src dir")
    args = parser.parse_args(argv)
    try:
        print(run(args.rounds, args.streams, args.concurrency, args.other_src))
    except BenchError as exc:
        print(f"stream_ab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
