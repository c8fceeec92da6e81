"""`relaygate serve --workers N`: N uvicorn worker processes sharing limits through Redis.

The parent resolves the settings once, runs the first-start bootstrap (so N workers never race to
create the database or the first key), announces, and hands its resolved options to the workers
as ``RELAYGATE_*`` variables; each worker builds its app with ``create_app_from_env``. Without a
Redis URL it refuses to start: each process would enforce every limit on its own, N times over.

The workers keep their metrics in a private directory the parent creates before they start and
removes after they have stopped, so any worker's ``/metrics`` answers for all of them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from relaygate.auth.bootstrap import BootstrapResult, bootstrap_if_empty
from relaygate.settings import Settings
from relaygate.settings.load import CONFIG_PATH_ENV, METRICS_DIR_ENV
from relaygate.store import open_store
from relaygate.web.protocol import HttpProtocol

APP_FACTORY = "relaygate.app:create_app_from_env"
SERVER_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    # uvicorn's httptools protocol (as the floor relay's), but a whole response's head leaves with
    # its body in one socket write instead of two (relaygate.web.protocol).
    "http": HttpProtocol,
    "lifespan": "on",
    "access_log": False,
    "log_level": "warning",
    "timeout_graceful_shutdown": 30,
    # Nothing reads the client address or scheme uvicorn's proxy-headers middleware would rewrite
    # (the dashboard reads x-forwarded-proto itself): it was one more frame on every request.
    "proxy_headers": False,
    "server_header": False,
}
"""uvicorn's options for one process and for N workers alike."""


def workers_without_redis(settings: Settings) -> str | None:
    """Why ``settings`` cannot run several workers, or None if it can."""
    workers = settings.server.workers
    if workers <= 1 or settings.redis_url:
        return None
    return (
        f"relaygate: --workers {workers} needs --redis-url (or RELAYGATE_REDIS_URL): without a "
        f"shared store each of the {workers} processes would enforce every rate limit, "
        f"concurrency cap and queue on its own, letting {workers}x the configured traffic through. "
        "Start one process without Redis, or give the workers a Redis to share."
    )


def worker_env(settings: Settings, config: Path | None) -> dict[str, str]:
    """The variables that make every worker load exactly the parent's settings."""
    env = {
        "RELAYGATE_HOST": settings.server.host,
        "RELAYGATE_PORT": str(settings.server.port),
        "RELAYGATE_WORKERS": str(settings.server.workers),
        "RELAYGATE_HOME": str(settings.resolved_home),
        "RELAYGATE_DATABASE_URL": settings.resolved_database_url,
        "RELAYGATE_REDIS_URL": settings.redis_url or "",
        "RELAYGATE_LOG_LEVEL": settings.log_level,
        CONFIG_PATH_ENV: str(config.resolve()) if config is not None else "",
    }
    return env


async def prepare_state(settings: Settings) -> BootstrapResult | None:
    """Create (migrate) the database and the first credentials once, before any worker starts."""
    store = await open_store(settings.resolved_database_url)
    try:
        return await bootstrap_if_empty(store, settings.resolved_home)
    finally:
        await store.close()


def run_workers(settings: Settings, config: Path | None) -> int:
    """Serve with ``settings.server.workers`` processes until interrupted."""
    problem = workers_without_redis(settings)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    os.environ.update(worker_env(settings, config))
    boot = asyncio.run(prepare_state(settings))
    print(announcement(settings, boot), flush=True)
    metrics_dir = tempfile.mkdtemp(prefix="relaygate-metrics-")  # private: mode 0700
    os.environ[METRICS_DIR_ENV] = metrics_dir
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=settings.server.host,
            port=settings.server.port,
            workers=settings.server.workers,
            **SERVER_OPTIONS,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def announcement(settings: Settings, boot: BootstrapResult | None) -> str:
    """What the parent prints once: where it listens, the workers, first-start credentials."""
    base = f"http://{settings.server.host}:{settings.server.port}"
    models = ", ".join(m.name for m in settings.models)
    lines = [
        f"relaygate listening on {base} with {settings.server.workers} workers "
        "sharing limits through Redis",
        f"models: {models}",
    ]
    if boot is not None:
        lines += [
            "",
            "First start: created credentials. They are shown only this once:",
            f"  API key:     {boot.api_key}",
            f"  admin token: {boot.admin_token}",
            f"  (also written to {boot.path}, readable only by you)",
        ]
    return "\n".join(lines)
