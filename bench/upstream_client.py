"""The upstream HTTP clients alone: CPU per request of each ``Transport`` in this process.

One zero-latency mock (``relaygate mock serve``), then rounds alternating aiohttp and the lean h1
client on uvloop: ``--concurrency`` tasks each send the bench's chat request and read the whole
answer (the gateway's non-streaming path) for ``--seconds``; CPU is this process's
``time.process_time`` over the window, so the mock's CPU is not in it.

    python -m bench.upstream_client [--rounds 6] [--seconds 3] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import uvloop

from bench.procs import start_mock
from bench.rig import chat_body
from bench.stats import median
from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import Timeouts, Transport
from relaygate.transport.h1 import H1Transport
from relaygate.transport.http import HttpTransport

CLIENTS = {"aiohttp": HttpTransport, "h1": H1Transport}


async def _window(transport: Transport, url: str, seconds: float, concurrency: int) -> float:
    """CPU microseconds per request over one window of ``seconds``."""
    request = UpstreamRequest(
        "POST",
        url,
        {"content-type": "application/json", "authorization": "Bearer x"},
        chat_body("bench-gpt"),
    )
    timeouts = Timeouts()
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            response = await transport.send(request, timeouts)
            await response.read()
            done += 1

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return 1e6 * (time.process_time() - cpu) / max(1, done)


async def _rounds(
    url: str, rounds: int, seconds: float, concurrency: int
) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {name: [] for name in CLIENTS}
    transports = {name: make() for name, make in CLIENTS.items()}
    try:
        for transport in transports.values():  # warm up: connections, caches
            await _window(transport, url, 0.5, concurrency)
        names = list(CLIENTS)
        for round_no in range(rounds):
            for name in names if round_no % 2 == 0 else names[::-1]:
                found[name].append(await _window(transports[name], url, seconds, concurrency))
    finally:
        for transport in transports.values():
            await transport.close()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream_client", description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-clients-"))
    mock = start_mock("mock", workdir, {})
    try:
        url = f"{mock.base_url}/v1/chat/completions"
        found = uvloop.run(_rounds(url, args.rounds, args.seconds, args.concurrency))
    finally:
        mock.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for name, runs in found.items():
        each = " ".join(f"{r:.1f}" for r in runs)
        print(f"  {name:<8} CPU us/request: median {median(runs):.1f}  (rounds: {each})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
