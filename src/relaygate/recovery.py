"""Start without the shared database, then reconnect in the background.

Requests do not need PostgreSQL (keys come from the in-process cache, ledger rows spill to disk),
so a gateway that starts while it is unreachable serves in a degraded mode instead of refusing to
start: with the key snapshot of an earlier run when there is one, else not ready.
``DatabaseRecovery`` retries with exponential backoff; its ``reconnect`` step (built by
``Services``) opens the stores (migrations run there) and starts the key cache's refresh; the
ledger writer's own retry then finds the store open and replays its spill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relaygate.auth.cache import KeyCache
from relaygate.store.errors import StoreError

logger = logging.getLogger("relaygate.database")
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 15.0
Reconnect = Callable[[], Awaitable[None]]


class DatabaseRecovery:
    """Whether the database has been reached since start-up and, until it is, the retry task."""

    def __init__(
        self,
        reconnect: Reconnect | None = None,
        where: str = "",
        *,
        first_delay: float = FIRST_RETRY_SECONDS,
        max_delay: float = MAX_RETRY_SECONDS,
    ) -> None:
        self.reachable = reconnect is None
        self.attempts = 0
        self.last_error: str | None = None
        self._reconnect = reconnect
        self._where = where
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._down_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self, error: StoreError) -> None:
        """Record the failed start-up connection and retry in the background."""
        self.last_error = str(error)
        if self._reconnect is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="relaygate-database-recovery")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _delays(self) -> Iterator[float]:
        delay = self._first_delay
        while True:
            # Jitter keeps the workers of one host from reconnecting in lockstep.
            yield delay * random.uniform(0.8, 1.2)
            delay = min(delay * 2, self._max_delay)

    async def _run(self) -> None:
        assert self._reconnect is not None
        for delay in self._delays():
            await asyncio.sleep(delay)
            self.attempts += 1
            try:
                await self._reconnect()
            except StoreError as exc:
                self.last_error = str(exc)
                logger.warning(
                    "database still unreachable (attempt %d, next in about %.0f s): %s",
                    self.attempts,
                    min(delay * 2, self._max_delay),
                    exc,
                )
                continue
            except Exception:
                # The retry loop is this task's top handler: it must outlive any surprise.
                logger.exception("reconnecting to the database failed unexpectedly; retrying")
                continue
            self.reachable = True
            self.last_error = None
            logger.warning(
                "database %s reachable again after %.1f s (%d attempt(s)): migrations applied, "
                "keys refreshed from the database, spilled ledger rows replaying; ready",
                self._where,
                time.monotonic() - self._down_at,
                self.attempts,
            )
            return


def readiness(keys: KeyCache, database: DatabaseRecovery) -> tuple[bool, dict[str, Any]]:
    """Ready for traffic once keys are loaded, from the database or from a snapshot."""
    ready = keys.loaded
    if not ready:
        status = "not ready"
    elif database.reachable:
        status = "ready"
    else:
        status = "degraded"
    body: dict[str, Any] = {
        "status": status,
        "ready": ready,
        "database": "ok" if database.reachable else "unreachable",
        "keys": keys.describe(),
    }
    return ready, body


class ReadinessCollector(Collector):
    """Readiness and database reachability as gauges, read only when scraped."""

    def __init__(self, keys: KeyCache, database: DatabaseRecovery) -> None:
        self._keys = keys
        self._database = database

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        ready, _ = readiness(self._keys, self._database)
        yield GaugeMetricFamily(
            "relaygate_ready",
            "1 while the gateway can authenticate requests (keys from the database or a snapshot)",
            value=1 if ready else 0,
        )
        yield GaugeMetricFamily(
            "relaygate_database_up",
            "0 while the gateway waits for a database that was unreachable at start-up, else 1",
            value=1 if self._database.reachable else 0,
        )
