"""The `relaygate` command: argument parsing only; subcommands call the same services as HTTP."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from relaygate import __version__
from relaygate.cli.batch import add_batch_parser
from relaygate.cli.cache import add_cache_parser
from relaygate.cli.keys import add_keys_parser
from relaygate.cli.mock import add_mock_parser
from relaygate.cli.serve import add_serve_parser
from relaygate.cli.usage import add_usage_parser
from relaygate.cli.worker import add_worker_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relaygate", description="Self-hosted LLM relay gateway")
    parser.add_argument("--version", action="version", version=f"relaygate {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(subparsers)
    add_keys_parser(subparsers)
    add_mock_parser(subparsers)
    add_usage_parser(subparsers)
    add_cache_parser(subparsers)
    add_worker_parser(subparsers)
    add_batch_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
