"""``python -m bench.refusal_instructions``: a refusal's instructions on the event loop (issue 13).

``bench.refusal_cpu``'s app and requests (a bad key, the limited key, ``bench-busy`` with
``x-relaygate-max-wait-ms: 0``), each refusal driven to its end in one ``coroutine.send`` (a
refusal never waits: the body is there, the answer goes to a list) inside ``functools.reduce``,
run under ``valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce``:
only what runs inside ``reduce`` is counted, so neither the start-up, nor the ledger's SQLite
writes (flushed between batches, outside the count), nor the timers of a loaded machine (the
WAL checkpoint, the log writer's polls) are in the figure. It is what the event loop spends per
refusal, ASGI call included; the ledger thread's share is not in it.

The rate-limited key here refills one request in 1,000 s, so no request of the run is admitted.
Two trees compare by running it from each (``PYTHONPATH=<tree>/src:<tree>``); instruction
counts do not move with the machine's load.

    python -m bench.refusal_instructions --kinds rl,busy --requests 2000   # ~2 min a kind
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cache_instructions import dumped_total
from bench.procs import create_key
from bench.refusal_cpu import BAD_KEY, CONFIG, NO_WAIT, _call, _scope
from bench.rig import BENCH_KEY_LIMITS, BUSY_MODEL, FAST_MODEL, chat_body

KINDS = {"401": 401, "rl": 429, "busy": 429}
BATCH = 500
WARM_UP = 300


async def _refuse(workdir: Path, kind: str, requests: int) -> dict[int, int]:
    """``requests`` refusals of ``kind``, ``BATCH`` at a time inside ``functools.reduce``."""
    from relaygate.app import RelaygateApp
    from relaygate.observability.logging import configure_logging
    from relaygate.services import build_services
    from relaygate.settings import load_settings

    key = create_key(workdir, "bench", *BENCH_KEY_LIMITS)
    limited = create_key(workdir, "bench-limited", "--rps", "0.001", "--priority", "10")
    (workdir / "relaygate.yaml").write_text(CONFIG)
    overrides = {
        "home": str(workdir / "home"),
        "database_url": f"sqlite:///{workdir / 'relaygate.db'}",
    }
    settings = load_settings(workdir / "relaygate.yaml", env={}, overrides=overrides)
    configure_logging(settings.log_level)
    app = RelaygateApp(settings)
    app.services = services = await build_services(settings)
    ledger = services.accounting.ledger
    assert ledger is not None
    holder = asyncio.create_task(
        _call(app, _scope(key), chat_body(BUSY_MODEL, "mock:fault hang"), [])
    )
    await asyncio.sleep(0.3)  # admitted and waiting on the mock
    scope, body = {
        "401": (_scope(BAD_KEY), chat_body(FAST_MODEL)),
        "rl": (_scope(limited), chat_body(FAST_MODEL)),
        "busy": (_scope(key, NO_WAIT), chat_body(BUSY_MODEL)),
    }[kind]
    statuses: list[int] = []
    try:
        for _ in range(WARM_UP):
            await _call(app, scope, body, [])
        await ledger.flush()

        def refuse(count: None, _: int) -> None:
            coroutine = _call(app, scope, body, statuses)
            try:
                coroutine.send(None)
            except StopIteration:
                return count
            coroutine.close()
            raise RuntimeError(f"{kind}: the request waited (it was not refused at once)")

        for _ in range(max(1, requests // BATCH)):
            functools.reduce(refuse, range(BATCH), None)
            await ledger.flush()  # outside the counted window
    finally:
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder
        await services.close()
    return dict(Counter(statuses))


def _child(kind: str, requests: int) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="relaygate-refusal-instr-") as tmp,
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stderr(devnull),
    ):
        statuses = asyncio.run(_refuse(Path(tmp), kind, requests))
    print(statuses)
    return 0 if set(statuses) == {KINDS[kind]} else 1


def count(kind: str, requests: int) -> float:
    """Instructions per refusal of ``kind`` on the event loop (a callgrind run of its own)."""
    done = max(1, requests // BATCH) * BATCH
    with tempfile.TemporaryDirectory(prefix="relaygate-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            *("valgrind", "--tool=callgrind", "--collect-atstart=no"),
            *("--toggle-collect=functools_reduce", f"--callgrind-out-file={out}"),
            *(sys.executable, "-m", "bench.refusal_instructions", "--child", kind),
            *("--requests", str(requests)),
        ]
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"{kind}: {run.stdout.strip()} {run.stderr[-2000:]}")
        return dumped_total(out) / done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.refusal_instructions", description=__doc__
    )
    parser.add_argument("--kinds", default="401,rl,busy", help="comma list of 401, rl, busy")
    parser.add_argument("--requests", type=int, default=2000, help="refusals counted per kind")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.requests)
    results: dict[str, Any] = {}
    for kind in args.kinds.split(","):
        results[kind] = count(kind, args.requests)
        print(
            f"  {kind:5s} {results[kind] / 1000:7.1f}k instructions per refusal on the event loop"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
