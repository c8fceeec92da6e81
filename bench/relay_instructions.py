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
import functools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.cache_instructions import SETTLE_SECONDS, counted, send
from bench.procs import Server, create_key, environment, start_floor, start_gateway, start_mock
from bench.rig import BENCH_KEY_LIMITS, FAST_MODEL, chat_body, write_config

WARM_UP = 200
PATH = "/v1/chat/completions"


Setup = tuple[Server, str, Path]
"""A counted process, the key it takes and where callgrind writes its dumps."""


def _wrapper(out: Path) -> list[str]:
    # Names written out in every dump: each one then reads alone (callgrind_annotate).
    return ["valgrind", "--tool=callgrind", "--compress-strings=no", f"--callgrind-out-file={out}"]


def start_setups(
    workdir: Path, model: str, mock: Server, other_src: Path | None, started: list[Server]
) -> dict[str, Setup]:
    """The gateway (and one from ``other_src``) and the floor relay, each under callgrind and
    relaying ``model`` to ``mock``; every process started is appended to ``started``."""
    setups: dict[str, Setup] = {}
    sources: list[tuple[str, Path | None]] = [("gateway", None)]
    if other_src is not None:
        sources.append((f"gateway @ {other_src}", other_src))
    for name, src in sources:
        home = workdir / f"setup-{len(setups)}"
        home.mkdir()
        config = write_config(home / "relaygate.yaml", {model: mock})
        env = {} if src is None else {"PYTHONPATH": f"{src}:{Path.cwd()}"}
        with environment(env):
            key = create_key(home, "bench", *BENCH_KEY_LIMITS)
            out = home / "callgrind.out"
            gateway, _ = start_gateway(
                config, home, False, wrapper=_wrapper(out), ready_seconds=600
            )
        started.append(gateway)
        setups[name] = (gateway, key, out)
    floor_home = workdir / "floor"
    floor_home.mkdir()
    out = floor_home / "callgrind.out"
    upstreams = {model: mock.base_url + "/v1"}
    key = setups["gateway"][1]
    floor = start_floor(floor_home, [key], upstreams, wrapper=_wrapper(out), ready_seconds=600)
    started.append(floor)
    setups["floor"] = (floor, key, out)
    return setups


Run = Callable[[Server, str, int], None]
"""``run(server, key, count)`` does ``count`` units of work (requests, streams) through one."""


def count_served(
    name: str,
    mock_options: Mapping[str, float],
    model: str,
    other_src: Path | None,
    rounds: int,
    per: int,
    warm_up: int,
    run: Run,
    keep: Path | None = None,
) -> dict[str, list[float]]:
    """Instructions per unit of work of each setup (``start_setups`` against a mock started
    with ``mock_options``) by round, the setups in alternating order, after ``warm_up`` units
    each; each round's dump copied to ``keep`` if given."""
    with tempfile.TemporaryDirectory(prefix=f"relaygate-{name}-") as tmp:
        started: list[Server] = []
        try:
            mock = start_mock("mock", Path(tmp), mock_options)
            started.append(mock)
            setups = start_setups(Path(tmp), model, mock, other_src, started)
            for server, key, _ in setups.values():
                run(server, key, warm_up)
            time.sleep(SETTLE_SECONDS)
            counts: dict[str, list[float]] = {setup: [] for setup in setups}
            names = list(setups)
            for round_no in range(rounds):
                for setup in names if round_no % 2 == 0 else names[::-1]:
                    server, key, out = setups[setup]
                    work = functools.partial(run, server, key, per)
                    counts[setup].append(counted(server, out, work) / per)
                    if keep is not None:
                        _keep(out, keep / f"{names.index(setup)}-{round_no}")
            return counts
        finally:
            for server in reversed(started):
                server.stop(timeout=120)


def summary(counts: dict[str, list[float]], args: argparse.Namespace) -> dict[str, Any]:
    """The lowest count of each setup and each gateway's over the floor's."""
    low = {name: min(found) for name, found in counts.items()}
    return {
        "min": low,
        "over_floor": {name: low[name] / low["floor"] for name in low if name != "floor"},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


def _keep(out: Path, target: Path) -> None:
    """Copy the newest dump of ``out`` to ``target`` (for ``callgrind_annotate``)."""
    newest = max(out.parent.glob(out.name + "*"), key=lambda found: found.stat().st_mtime)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(newest, target)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    payload = chat_body(FAST_MODEL)

    def run(server: Server, key: str, count: int) -> None:
        asyncio.run(send(server.base_url + PATH, key, payload, count, args.clients))

    per_request = count_served(
        "relay-instructions",
        {},
        FAST_MODEL,
        args.other_src,
        args.rounds,
        args.requests,
        WARM_UP,
        run,
        args.keep,
    )
    return {"instructions_per_request": per_request, **summary(per_request, args)}


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
