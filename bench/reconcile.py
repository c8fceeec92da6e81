"""Gateway CPU per request under different setups, same mock, same wrk load, one run.

Issue 13 asked to reconcile the bench's 0.40 ms per request with 1.0 ms measured from outside.
This runs the floor relay and one gateway process per setup, side by side, against one
zero-latency mock, with ``wrk -t1 -c50`` rounds in alternating order, and prints per setup: req/s,
CPU ms per request (the window's CPU / wrk's requests), non-2xx answers (a shed or refused
request is far cheaper than a relayed one), and the CPU the process spent starting up (a figure
read from a process's total CPU time includes it).

    python -m bench.reconcile [--rounds 3] [--seconds 8] [--other-src DIR]

``--other-src DIR`` adds the ``all features`` setup run from another checkout's ``src`` (e.g.
``git archive 1f4e18b src | tar -x -C /tmp/old`` then ``--other-src /tmp/old/src``).
``--clients`` runs only ``all features`` with each upstream HTTP client (aiohttp, the lean h1
client: ``server.upstream_client``) and the floor relay.

Setups:
- ``bootstrap key``: the bench's setup before issue 13: the first-start key (no limits,
  priority 0), everything else default.
- ``created key, p0``: a key from ``relaygate keys create`` with no options (the outside setup).
- ``created key, p10``: the same with ``--priority 10``: never shed by overload (lag < 200 ms).
- ``all features``: the bench's setup now: ``keys create`` with in-memory limits, priority 10.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from bench.procs import (
    BenchError,
    Server,
    create_key,
    environment,
    start_floor,
    start_gateway,
    start_mock,
)
from bench.rig import BENCH_KEY_LIMITS, FAST_MODEL, chat_body, write_config
from bench.stats import median
from bench.wrk import find_wrk, run_wrk, write_script

PATH = "/v1/chat/completions"


H1_CLIENT = {"RELAYGATE_UPSTREAM_CLIENT": "h1"}

Variant = tuple[str, tuple[str, ...] | None, Path | None, dict[str, str]]


def _variants(other_src: Path | None, clients: bool, ab: bool = False) -> list[Variant]:
    if ab and other_src is not None:
        return [
            ("all features", BENCH_KEY_LIMITS, None, {}),
            (f"all features @ {other_src.name}", BENCH_KEY_LIMITS, other_src, {}),
        ]
    if clients:
        return [
            ("all features", BENCH_KEY_LIMITS, None, {}),
            ("all features, h1 client", BENCH_KEY_LIMITS, None, H1_CLIENT),
        ]
    variants: list[Variant] = [
        ("bootstrap key", None, None, {}),
        ("created key, p0", (), None, {}),
        ("created key, p10", ("--priority", "10"), None, {}),
        ("all features", BENCH_KEY_LIMITS, None, {}),
    ]
    if other_src is not None:
        variants.append((f"all features @ {other_src.name}", BENCH_KEY_LIMITS, other_src, {}))
    return variants


def _start(
    workdir: Path, mock: Server, other_src: Path | None, clients: bool = False, ab: bool = False
) -> dict[str, tuple[Server, str]]:
    setups: dict[str, tuple[Server, str]] = {}
    for name, key_options, src, env in _variants(other_src, clients, ab):
        home = workdir / f"setup-{len(setups)}"
        home.mkdir()
        config = write_config(home / "relaygate.yaml", {FAST_MODEL: mock})
        with _sources(src, env):
            key = "" if key_options is None else create_key(home, "bench", *key_options)
            gateway, banner = start_gateway(config, home, banner_key=key_options is None)
        gateway.name = name
        setups[name] = (gateway, key or banner)
    key = setups["all features"][1]
    setups["floor"] = (start_floor(workdir, [key], {FAST_MODEL: mock.base_url + "/v1"}), key)
    return setups


def _sources(src: Path | None, env: dict[str, str]) -> AbstractContextManager[None]:
    """Start processes with ``src`` (another checkout's ``src``) first on their path and ``env``
    set."""
    if src is not None:
        path = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
        env = {**env, "PYTHONPATH": path}
    return environment(env)


def run(
    rounds: int,
    seconds: float,
    other_src: Path | None = None,
    clients: bool = False,
    ab: bool = False,
) -> str:
    """Start everything, run the rounds, return the table."""
    wrk = find_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-reconcile-"))
    mock = start_mock("mock", workdir, {})
    setups: dict[str, tuple[Server, str]] = {}
    try:
        setups = _start(workdir, mock, other_src, clients, ab)
        startup = {name: server.cpu_seconds() for name, (server, _) in setups.items()}
        found: dict[str, list[tuple[float, float, int]]] = {name: [] for name in setups}
        names = list(setups)
        for round_no in range(rounds):
            for name in names if round_no % 2 == 0 else names[::-1]:
                server, key = setups[name]
                script = write_script(workdir / f"{round_no}.lua", chat_body(FAST_MODEL), key)
                url = server.base_url + PATH
                run_wrk(wrk, url, script, 2.0)
                before = server.cpu_seconds()
                result = run_wrk(wrk, url, script, seconds)
                cpu_ms = 1000.0 * (server.cpu_seconds() - before) / max(1, result.requests)
                found[name].append((result.rps, cpu_ms, result.non_2xx))
    finally:
        for server, _ in setups.values():
            server.stop()
        mock.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    lines = [
        f"  {'setup':<26}{'req/s':>10}{'CPU ms/req':>12}{'non-2xx':>10}{'start-up CPU s':>16}"
        "  CPU ms/req by round"
    ]
    for name, runs in found.items():
        lines.append(
            f"  {name:<26}{median(r[0] for r in runs):>10,.0f}{median(r[1] for r in runs):>12.3f}"
            f"{sum(r[2] for r in runs):>10,}{startup[name]:>16.2f}"
            f"  {' '.join(f'{r[1]:.3f}' for r in runs)}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; 1 when the processes could not run."""
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--other-src", type=Path, help="also run a gateway from this src dir (an older commit)"
    )
    parser.add_argument(
        "--clients", action="store_true", help="only all features, per upstream HTTP client"
    )
    parser.add_argument(
        "--ab",
        action="store_true",
        help="with --other-src: only all features here and there, and the floor",
    )
    args = parser.parse_args(argv)
    try:
        print(run(args.rounds, args.seconds, args.other_src, args.clients, args.ab))
    except BenchError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
