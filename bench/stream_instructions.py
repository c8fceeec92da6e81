"""``python -m bench.stream_instructions``: instructions per stream, gateway and floor.

The streaming figure of issue 13 (gateway CPU per 23-event stream over the floor relay's) as
counted by valgrind rather than timed: the ``bench.stream_ab`` load (``bench.rig``'s paced stream
mock, run natively; ``--concurrency`` streams at a time, staggered) through the gateway (the bench
key with in-memory limits, the SQLite ledger, metrics, the request log) and the floor relay
(``bench.floor``), each served under ``valgrind --tool=callgrind``. For each, the instructions its
process executed (every thread) while ``--streams`` streams ran, counters zeroed before and
dumped after with ``callgrind_control`` (``bench.cache_instructions.counted``). Instruction
counts do not move with the machine's load, so two trees compare on a shared machine where CPU
times do not; they leave out the kernel's share (socket calls, loop passes).

    python -m bench.stream_instructions                          # ~4 minutes
    python -m bench.stream_instructions --other-src /tmp/old/src # a second gateway, another tree
    python -m bench.stream_instructions --keep-dumps /tmp/dumps  # then callgrind_annotate them
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench.openloop import new_session
from bench.procs import Server
from bench.relay_instructions import count_served, summary
from bench.rig import STREAM_MOCK, STREAM_MODEL, STREAM_PROMPT, STREAM_SECONDS, chat_body
from bench.streams import run_streams

WARM_UP = 30
PATH = "/v1/chat/completions"


async def _streams(url: str, key: str, count: int, concurrency: int) -> None:
    """``count`` streams, ``concurrency`` at a time; every one must end whole."""
    body = chat_body(STREAM_MODEL, STREAM_PROMPT, stream=True)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with new_session() as session:
        result = await run_streams(
            session, url, body, headers, count, concurrency, STREAM_SECONDS / concurrency
        )
    if result.errors:
        raise RuntimeError(f"{url}: {result.errors} failed streams")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    def run(server: Server, key: str, count: int) -> None:
        asyncio.run(_streams(server.base_url + PATH, key, count, args.concurrency))

    per_stream = count_served(
        "stream-instructions",
        STREAM_MOCK,
        STREAM_MODEL,
        args.other_src,
        args.rounds,
        args.streams,
        WARM_UP,
        run,
        args.keep_dumps,
    )
    return {"instructions_per_stream": per_stream, **summary(per_stream, args)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stream_instructions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--streams", type=int, default=200, help="per setup and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--other-src", type=Path, default=None, help="another tree's src")
    parser.add_argument(
        "--keep-dumps",
        type=Path,
        default=None,
        help="copy each round's dump here (<setup>-<round>)",
    )
    args = parser.parse_args(argv)
    print(json.dumps(measure(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
