"""`relaygate serve`: run the gateway with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from relaygate.app import create_app
from relaygate.cli.workers import SERVER_OPTIONS, run_workers
from relaygate.observability.logging import configure_logging
from relaygate.services import Services
from relaygate.settings import ConfigError, Settings, load_settings


def add_serve_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run the gateway")
    parser.add_argument(
        "--config", type=Path, help="YAML config file (default: embedded mock setup)"
    )
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default 8080)")
    parser.add_argument("--database-url", help="sqlite:///path or postgresql://...")
    parser.add_argument("--home", help="state directory (default ~/.relaygate)")
    parser.add_argument(
        "--workers", type=int, help="worker processes (default 1; more than 1 needs --redis-url)"
    )
    parser.add_argument("--redis-url", help="redis://... shared by every process for limits")
    parser.set_defaults(handler=run_serve)


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        "server.host": getattr(args, "host", None),
        "server.port": getattr(args, "port", None),
        "database_url": getattr(args, "database_url", None),
        "home": getattr(args, "home", None),
        "server.workers": getattr(args, "workers", None),
        "redis_url": getattr(args, "redis_url", None),
    }
    return load_settings(args.config, overrides=overrides)


INTERRUPTED = 130
"""The exit status of a process ended by Ctrl-C (SIGINT), by the shell's convention."""


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"relaygate: configuration error\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if settings.server.workers > 1:
        return run_workers(settings, args.config)
    app = create_app(settings, on_started=lambda services: _announce(settings, services))
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        **SERVER_OPTIONS,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on Ctrl-C, then raises the signal again for the default
        # handler: the stop is complete by now, so end as an interrupted process, not a traceback.
        return INTERRUPTED
    return 0 if server.started else 1


def _announce(settings: Settings, services: Services) -> None:
    base = f"http://{settings.server.host}:{settings.server.port}"
    lines = [f"relaygate listening on {base}", f"models: {', '.join(services.catalog.model_names)}"]
    boot = services.bootstrap
    if boot is not None:
        lines += [
            "",
            "First start: created credentials. They are shown only this once:",
            f"  API key:     {boot.api_key}",
            f"  admin token: {boot.admin_token}",
            f"  (also written to {boot.path}, readable only by you)",
            "",
            f"  curl {base}/v1/chat/completions -H 'Authorization: Bearer {boot.api_key}' \\",
            "    -H 'content-type: application/json' \\",
            '    -d \'{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}\'',
        ]
    print("\n".join(lines), flush=True)
