"""``python -m bench.relay_instructions``: instructions per relayed request, gateway and floor.

The saturation figure of issue 13 (gateway CPU per relayed request over the floor relay's) as
counted by valgrind rather than timed: the reconcile bench's ``all features`` gateway (a key
from ``relaygate keys create`` with in-memory limits, the SQLite ledger, metrics, the request
log) and the floor relay (``bench.floor``), each served as usual but under ``valgrind
--tool=callgrind``, against one zero-latency mock run natively. For each, the instructions its
process executed (every thread) while ``--requests`` relayed requests were answered, counters
zeroed before and dumped after with ``callgrind_control`` (``bench.cache_instructions``).
Instruction counts do not move with the machine's load, so two trees compare on a shared
machine where CPU times do not; they leave out the kernel's share (socket calls), which the
gateway and the floor have about equally of (one read and one write per request each side).

    python -m bench.relay_instructions                          # ~4 minutes
    python -m bench.relay_instructions --other-src /tmp/old/src # a second gateway from another tree
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cache_instructions import SETTLE_SECONDS, counted, send
from bench.procs import Server, create_key, environment, start_floor, start_gateway, start_mock
from bench.rig import BENCH_KEY_LIMITS, FAST_MODEL, chat_body, write_config

WARM_UP = 200
PATH = "/v1/chat/completions"


def _wrapper(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]


def _keep(out: Path, target: Path) -> None:
    """Copy the newest dump of ``out`` to ``target`` (for ``callgrind_annotate``)."""
    newest = max(out.parent.glob(out.name + "*"), key=lambda found: found.stat().st_mtime)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(newest, target)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="relaygate-relay-instructions-") as tmp:
        workdir = Path(tmp)
        started: list[Server] = []
        setups: dict[str, tuple[Server, str, Path]] = {}
        try:
            mock = start_mock("mock", workdir, {})
            started.append(mock)
            sources: list[tuple[str, Path | None]] = [("gateway", None)]
            if args.other_src is not None:
                sources.append((f"gateway @ {args.other_src}", args.other_src))
            for name, src in sources:
                home = workdir / f"setup-{len(setups)}"
                home.mkdir()
                config = write_config(home / "relaygate.yaml", {FAST_MODEL: mock})
                env = {} if src is None else {"PYTHONPATH": f"{src}:{Path.cwd()}"}
                with environment(env):
                    key = create_key(home, "bench", *BENCH_KEY_LIMITS)
                    out = home / "callgrind.out"
                    gateway, _ = start_gateway(
                        config, home, False, wrapper=_wrapper(out), ready_seconds=600
                    )
                started.append(gateway)
                setups[name] = (gateway, key, out)
            key = setups["gateway"][1]
            floor_home = workdir / "floor"
            floor_home.mkdir()
            out = floor_home / "callgrind.out"
            upstreams = {FAST_MODEL: mock.base_url + "/v1"}
            floor = start_floor(
                floor_home, [key], upstreams, wrapper=_wrapper(out), ready_seconds=600
            )
            started.append(floor)
            setups["floor"] = (floor, key, out)
            payload = chat_body(FAST_MODEL)
            for server, key, _ in setups.values():
                url = server.base_url + PATH
                asyncio.run(send(url, key, payload, WARM_UP, args.clients))
            time.sleep(SETTLE_SECONDS)
            per_request: dict[str, list[float]] = {name: [] for name in setups}
            names = list(setups)
            for round_no in range(args.rounds):
                for name in names if round_no % 2 == 0 else names[::-1]:
                    server, key, out = setups[name]

                    def run(url: str = server.base_url + PATH, key: str = key) -> None:
                        asyncio.run(send(url, key, payload, args.requests, args.clients))

                    per_request[name].append(counted(server, out, run) / args.requests)
                    if args.keep is not None:
                        _keep(out, args.keep / f"{names.index(name)}-{round_no}")
        finally:
            for server in reversed(started):
                server.stop(timeout=120)
    low = {name: min(found) for name, found in per_request.items()}
    return {
        "instructions_per_request": per_request,
        "min": low,
        "over_floor": {name: low[name] / low["floor"] for name in low if name != "floor"},
        "args": {**vars(args), "other_src": str(args.other_src), "keep": str(args.keep)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay_instructions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--requests", type=int, default=1000, help="per setup and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--other-src", type=Path, default=None, help="another tree's src")
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy each round's dump here (<setup>-<round>)"
    )
    args = parser.parse_args(argv)
    print(json.dumps(measure(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
