"""`relaygate worker`: run the pipelines' workers without HTTP, so jobs spread over processes
and machines sharing one PostgreSQL database (``serve`` runs the same workers in process)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from relaygate.observability.logging import configure_logging
from relaygate.services import build_services
from relaygate.settings import ConfigError, Settings, load_settings


def add_worker_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("worker", help="run extraction pipeline workers (no HTTP)")
    parser.add_argument("--config", type=Path, help="YAML config file with pipelines")
    parser.add_argument("--database-url", help="sqlite:///path or postgresql://...")
    parser.add_argument("--home", help="state directory (default ~/.relaygate)")
    parser.add_argument("--redis-url", help="redis://... shared by every process for limits")
    parser.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    overrides = {
        "database_url": args.database_url,
        "home": args.home,
        "redis_url": args.redis_url,
    }
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"relaygate: configuration error\n{exc}", file=sys.stderr)
        return 2
    if not settings.pipelines:
        print("relaygate worker: the configuration defines no pipelines", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    return asyncio.run(_work(settings))


async def _work(settings: Settings) -> int:
    services = await build_services(settings)
    try:
        if services.pipelines is None:
            print("relaygate worker: the job store is unavailable", file=sys.stderr)
            return 1
        names = ", ".join(services.pipelines.pipelines)
        print(f"relaygate worker running pipelines: {names}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0
    finally:
        await services.close()
