"""`relaygate mock serve`: run the built-in mock upstream as a standalone HTTP server.

Also runnable as ``python -m relaygate.cli.mock serve --port 9000``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
from pydantic import ValidationError

from relaygate.mock.app import create_mock_app
from relaygate.mock.faults import FAULT_KINDS
from relaygate.settings.model import MockFaultSettings, MockSettings

_OPTION_OF_FIELD = {
    "latency_ms": "--latency-ms",
    "latency_jitter_ms": "--jitter-ms",
    "first_token_ms": "--first-token-ms",
    "stream_interval_ms": "--stream-interval-ms",
    "max_concurrency": "--max-concurrency",
    "rate": "--fault-rate",
    "first_n": "--fault-first-n",
    "retry_after": "--retry-after",
}
# uvicorn logs this for every injected "drop" fault: the mock cuts the response on purpose.
_EXPECTED_DROP = "ASGI callable returned without completing response."


def add_mock_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mock serve`` to the ``relaygate`` command."""
    parser = subparsers.add_parser("mock", help="the built-in mock upstream")
    commands = parser.add_subparsers(dest="mock_command", required=True)
    add_serve_arguments(commands.add_parser("serve", help="serve the mock upstream over HTTP"))


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` options; sets ``handler`` to ``run_mock_serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="listen port (default 9000)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="whole-answer latency")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="± uniform latency jitter")
    parser.add_argument(
        "--first-token-ms", type=float, default=0.0, help="stream first-token delay"
    )
    parser.add_argument("--stream-interval-ms", type=float, default=0.0, help="gap between events")
    parser.add_argument("--max-concurrency", type=int, default=0, help="429 beyond this (0: none)")
    parser.add_argument("--fault", choices=sorted(FAULT_KINDS | {"none"}), default="none")
    parser.add_argument("--fault-rate", type=float, help="fraction of requests that fail")
    parser.add_argument("--fault-first-n", type=int, help="the first N requests fail")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of a 429")
    parser.add_argument("--seed", type=int, help="seed for latency jitter and fault draws")
    parser.set_defaults(handler=run_mock_serve)


def mock_settings_from_args(args: argparse.Namespace) -> MockSettings:
    """``MockSettings`` from the options; ``--fault`` alone (no rate, no count) fails all."""
    rate, first_n = args.fault_rate, args.fault_first_n
    if args.fault != "none" and rate is None and first_n is None:
        rate = 1.0
    fault = MockFaultSettings(
        kind=args.fault, rate=rate or 0.0, first_n=first_n or 0, retry_after=args.retry_after
    )
    return MockSettings(
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.jitter_ms,
        first_token_ms=args.first_token_ms,
        stream_interval_ms=args.stream_interval_ms,
        max_concurrency=args.max_concurrency,
        fault=fault,
    )


def run_mock_serve(args: argparse.Namespace) -> int:
    """Serve the mock until interrupted; 2 on bad options, 1 if the server could not start."""
    try:
        settings = mock_settings_from_args(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_OPTION_OF_FIELD.get(str(e['loc'][-1]), e['loc'][-1])}: {e['msg']}"
            for e in exc.errors()
        )
        print(f"relaygate mock: invalid option: {problems}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        create_mock_app(settings, seed=args.seed),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    logging.getLogger("uvicorn.error").addFilter(_IgnoreExpectedDrops())
    server = uvicorn.Server(config)
    print(f"relaygate mock serving on http://{args.host}:{args.port}", flush=True)
    server.run()
    return 0 if server.started else 1


class _IgnoreExpectedDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _EXPECTED_DROP


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m relaygate.cli.mock``."""
    parser = argparse.ArgumentParser(prog="python -m relaygate.cli.mock")
    commands = parser.add_subparsers(dest="mock_command", required=True)
    add_serve_arguments(commands.add_parser("serve", help="serve the mock upstream over HTTP"))
    args = parser.parse_args(argv)
    result: Any = args.handler(args)
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
