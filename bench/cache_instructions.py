"""``python -m bench.cache_instructions``: the hit path against the relayed path in instructions.

The hit-path figure of ``bench.cache_bench`` (gateway CPU per request, hit over relayed) as
counted by valgrind rather than timed: the same config (``bench-relay`` and ``bench-hit`` over one
zero-latency mock), the gateway served as usual but under ``valgrind --tool=callgrind``, and for
each kind the instructions its process executed (every thread: uvicorn, the handler, the ledger's
and the request log's writers) while ``--requests`` requests were answered, counters zeroed
before and dumped after with ``callgrind_control``. Instruction counts do not move with the
machine's load, so two trees compare on a shared machine where CPU times do not; they leave out
the kernel's share (socket calls), which the relayed path has more of. The mock runs natively.

    python -m bench.cache_instructions               # ~3 minutes, mostly valgrind's start-up
    python -m bench.cache_instructions --requests 300 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.cache_bench import HIT_MODEL, RELAY_MODEL, body, write_config
from bench.procs import Server, start_gateway, start_mock

WARM_UP = 30
SETTLE_SECONDS = 1.5  # the ledger's and the request log's writers finish the previous batch


async def send(url: str, key: str, payload: bytes, count: int, clients: int) -> None:
    """``count`` requests from ``clients`` keep-alive clients; every answer must be a 200."""
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    left = count
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url, data=payload, headers=headers) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"status {answer.status}: {await answer.text()}")

        await asyncio.gather(*(client() for _ in range(clients)))


def dumped_total(path: Path) -> int:
    """The instructions a callgrind dump counted (its ``totals:`` line)."""
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"{path}: no totals line")


def counted(gateway: Server, out: Path, run: Any) -> int:
    """Instructions the gateway executed while ``run()`` ran (and its writers settled after)."""
    subprocess.run(["callgrind_control", "-z", str(gateway.pid)], check=True, capture_output=True)
    run()
    time.sleep(SETTLE_SECONDS)
    before = set(out.parent.glob(out.name + "*"))
    subprocess.run(["callgrind_control", "-d", str(gateway.pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = set(out.parent.glob(out.name + "*")) - before
        if new:
            time.sleep(0.5)  # written whole
            return dumped_total(max(new, key=os.path.getmtime))
        time.sleep(0.2)
    raise RuntimeError("callgrind wrote no dump")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="relaygate-cache-instructions-") as tmp:
        workdir = Path(tmp)
        started: list[Server] = []
        try:
            fast = start_mock("mock-fast", workdir, {})
            started.append(fast)
            slow = start_mock("mock-slow", workdir, {"latency-ms": 200})
            started.append(slow)
            config = write_config(workdir / "relaygate.yaml", fast, slow)
            out = workdir / "callgrind.out"
            wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            gateway, key = start_gateway(config, workdir, wrapper=wrapper, ready_seconds=600)
            started.append(gateway)
            url = f"{gateway.base_url}/v1/chat/completions"
            for model in (HIT_MODEL, RELAY_MODEL):  # the first hit-model request: now cached
                asyncio.run(send(url, key, body(model), WARM_UP, args.clients))
            time.sleep(SETTLE_SECONDS)
            per_request: dict[str, list[float]] = {"relayed": [], "hit": []}
            for _ in range(args.rounds):
                for kind, model in (("relayed", RELAY_MODEL), ("hit", HIT_MODEL)):
                    payload = body(model)

                    def run(payload: bytes = payload) -> None:
                        asyncio.run(send(url, key, payload, args.requests, args.clients))

                    per_request[kind].append(counted(gateway, out, run) / args.requests)
        finally:
            for server in reversed(started):
                server.stop(timeout=120)
    hit, relayed = min(per_request["hit"]), min(per_request["relayed"])
    return {
        "instructions_per_request": per_request,
        "min": {"hit": hit, "relayed": relayed},
        "hit_over_relayed": hit / relayed,
        "args": vars(args),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cache_instructions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--requests", type=int, default=300, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
