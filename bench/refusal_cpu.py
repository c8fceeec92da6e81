"""``python -m bench.refusal_cpu``: the gateway's own CPU per refusal, in process (issue 13).

The gateway's services are built in this process (a fresh SQLite store, keys made as the rig
makes them, the in-process mock behind ``bench-gpt`` and behind ``bench-busy``, whose only slot a
hanging request holds) and the ASGI app is called directly, one request after another, for each
kind: a bad key (401), the ``limited`` key (rate-limit 429), ``bench-busy`` with
``x-relaygate-max-wait-ms: 0`` (busy 429) and, for scale, a relayed request. Reported: the
process's CPU time per request (every thread: the ledger's SQLite writes are flushed inside each
window, the request log's writer thread counts), min and median over rounds.

What phase 4 of ``bench.run`` measures minus uvicorn, HTTP parsing and socket writes (about what
the floor relay's 401 costs): the gateway's own work only, and, being one process's CPU time,
less disturbed by other tenants of the machine than the phase's figures. Compare two trees by
running it from each (``PYTHONPATH=<tree>/src:<tree>``), interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.procs import create_key
from bench.rig import BENCH_KEY_LIMITS, BUSY_MODEL, FAST_MODEL, LIMITED_KEY_LIMITS, chat_body

CONFIG = f"""log_level: info
models:
  - name: {FAST_MODEL}
    deployments:
      - provider: mock
  - name: {BUSY_MODEL}
    deployments:
      - provider: mock
        max_concurrency: 1
"""
PATH = "/v1/chat/completions"
BAD_KEY = "rg-" + "0" * 40
NO_WAIT = ((b"x-relaygate-max-wait-ms", b"0"),)
WARM_UP = 200


def _scope(key: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> dict[str, Any]:
    headers = [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")]
    return {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "query_string": b"",
        "headers": [*headers, *extra],
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes, statuses: list[int]) -> None:
    """One request through the app; its status goes to ``statuses``."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:  # only a streamed answer waits for a disconnect
            await asyncio.Event().wait()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)


async def _measure(workdir: Path, requests: int, rounds: int) -> dict[str, list[float]]:
    # Imported here: the gateway's modules load after the keys are made, as in a served process.
    from relaygate.app import RelaygateApp
    from relaygate.observability.logging import configure_logging
    from relaygate.services import build_services
    from relaygate.settings import load_settings

    key = create_key(workdir, "bench", *BENCH_KEY_LIMITS)
    limited = create_key(workdir, "bench-limited", *LIMITED_KEY_LIMITS)
    (workdir / "relaygate.yaml").write_text(CONFIG)
    overrides = {
        "home": str(workdir / "home"),
        "database_url": f"sqlite:///{workdir / 'relaygate.db'}",
    }
    settings = load_settings(workdir / "relaygate.yaml", env={}, overrides=overrides)
    configure_logging(settings.log_level)  # request lines to stderr through the writer thread
    app = RelaygateApp(settings)
    app.services = services = await build_services(settings)
    ledger = services.accounting.ledger
    assert ledger is not None
    hang = chat_body(BUSY_MODEL, "mock:fault hang")
    holder = asyncio.create_task(_call(app, _scope(key), hang, []))
    await asyncio.sleep(0.3)  # admitted and waiting on the mock
    kinds = {
        "bad key (401)": (_scope(BAD_KEY), chat_body(FAST_MODEL), 401),
        "rate limit (429)": (_scope(limited), chat_body(FAST_MODEL), 429),
        "busy (429)": (_scope(key, NO_WAIT), chat_body(BUSY_MODEL), 429),
        "relayed (200)": (_scope(key), chat_body(FAST_MODEL), 200),
    }
    results: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        for scope, body, _ in kinds.values():
            for _ in range(WARM_UP):
                await _call(app, scope, body, [])
        for _ in range(rounds):
            for kind, (scope, body, expected) in kinds.items():
                statuses: list[int] = []
                await ledger.flush()
                started = time.process_time()
                for _ in range(requests):
                    await _call(app, scope, body, statuses)
                await ledger.flush()
                results[kind].append((time.process_time() - started) / requests * 1e6)
                # The limited key's bucket refills one request a second.
                if Counter(statuses)[expected] < 0.99 * requests:
                    raise RuntimeError(f"{kind}: answered {dict(Counter(statuses))}")
    finally:
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder
        await services.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.refusal_cpu", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="requests per kind and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    # The request log goes to stderr: kept out of the report.
    with (
        tempfile.TemporaryDirectory(prefix="relaygate-refusal-cpu-") as tmp,
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stderr(devnull),
    ):
        results = asyncio.run(_measure(Path(tmp), args.requests, args.rounds))
    print(f"gateway CPU us per request, in process (load average before: {load})")
    for kind, values in results.items():
        low, mid = min(values), statistics.median(values)
        print(f"  {kind:18s} min {low:6.1f}   median {mid:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
