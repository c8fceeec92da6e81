"""``/metrics`` of ``relaygate serve --workers N``: the whole gateway's totals, whichever worker
answers the scrape.

The parent gives the workers a private directory (``RELAYGATE_METRICS_DIR``). Every
``PUBLISH_SECONDS`` each worker writes a snapshot of its app's registry there, in
prometheus_client's multi-process file format, replacing its previous one. A scrape writes the
answering worker's snapshot first (so its own values are current and each worker's values only
ever grow from one scrape to the next), drops the gauges of workers that have exited, and merges
every file: counters and histograms summed, each gauge as ``GAUGES`` says. A worker that exits
leaves its last counters behind, so no total ever goes down.

Why snapshots and not prometheus_client's own multi-process mode: that mode writes every
``inc``/``observe`` through to an mmap file (measured ~0.5 us more per counter increment and
~1.2 us per histogram observation, ~10 us per request here), is switched on for the whole
process by an environment variable read at import, and cannot export the scrape-time collectors.
Snapshots leave the request path exactly as in a single process; the price is that another
worker's values in a scrape are up to ``PUBLISH_SECONDS`` old, and each worker's event loop
spends about one scrape's collection per ``PUBLISH_SECONDS`` (~4 ms for ~1,000 series).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from relaygate.core.background import BackgroundTask
from relaygate.observability.cache_metrics import HIT_RATIO, hit_ratios

PUBLISH_SECONDS = 2.0
logger = logging.getLogger("relaygate.metrics")
Aggregation = Literal["sum", "max", "min"]

GAUGES: dict[str, Aggregation] = {
    # Each worker holds its own share: the gateway's is the sum.
    "relaygate_requests_in_flight": "sum",
    "relaygate_admission_queue_depth": "sum",
    "relaygate_asyncio_tasks": "sum",
    "relaygate_deployment_outstanding": "sum",
    "relaygate_cache_bytes": "sum",
    "relaygate_cache_entries": "sum",
    "relaygate_ledger_queued_rows": "sum",
    "relaygate_sessions_active": "sum",
    "relaygate_sessions_bytes": "sum",
    # The worst worker is the one to see: the most open breaker, the most degraded level, the
    # slowest loop (or every worker reads the same shared value, as the pipelines' job counts).
    "relaygate_breaker_state": "max",
    "relaygate_degradation_level": "max",
    "relaygate_event_loop_lag_seconds": "max",
    "relaygate_deployment_latency_ewma_seconds": "max",
    "relaygate_pipeline_jobs": "max",
    "relaygate_ledger_spill_bytes": "max",
    "relaygate_ledger_spill_max_bytes": "max",
    "relaygate_alerts_active": "max",
    "relaygate_key_budget_used_ratio": "max",
    # Each worker adapts its own limit: the tightest one shows the deployment struggling.
    "relaygate_adaptive_concurrency_limit": "min",
    # Up only while every worker is.
    "relaygate_shared_limits_up": "min",
    "relaygate_ready": "min",
    "relaygate_database_up": "min",
    "relaygate_ledger_healthy": "min",
}
"""How each gauge merges over the workers (test_all_workers checks that every gauge is here)."""
DERIVED = frozenset({HIT_RATIO})
"""Not merged but recomputed from merged counters (a ratio of sums, not a sum of ratios)."""


class AllWorkers:
    """This worker's part in sharing metrics, and the merge a scrape answers with."""

    def __init__(self, directory: Path, registry: CollectorRegistry) -> None:
        self._directory = directory
        self._registry = registry
        # pid plus a random tag: a later process given a recycled pid keeps its own files.
        self.tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._publisher: BackgroundTask | None = None
        self._prefixes: set[str] = set()
        self._keys: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def render(self) -> bytes:
        return generate_latest(self.merged())

    def merged(self) -> CollectorRegistry:
        """Every worker's metrics merged, this worker's as of now (what a scrape answers)."""
        self.publish()
        remove_dead_gauges(self._directory)
        merged = CollectorRegistry(auto_describe=False)
        merged.register(_Merged(self._directory))
        return merged

    def publish(self) -> None:
        """Write this worker's snapshot (each file replaced whole, so a series that is gone from
        the registry is gone from the file)."""
        files: dict[str, list[tuple[str, float]]] = {}
        for metric in self._registry.collect():
            if metric.name in DERIVED:
                continue
            if metric.type == "gauge":
                prefix = f"gauge_live{GAUGES.get(metric.name, 'sum')}"
            else:
                prefix = metric.type
            entries = files.setdefault(prefix, [])
            for sample in metric.samples:
                if sample.name.endswith("_created"):
                    continue  # when each worker's series began: means nothing summed
                labels = sample.labels
                series = (sample.name, tuple(labels.items()))
                key = self._keys.get(series)
                if key is None:  # series are bounded (no caller-chosen labels): so is this
                    key = self._keys[series] = mmap_key(
                        metric.name,
                        sample.name,
                        list(labels),
                        list(labels.values()),
                        metric.documentation,
                    )
                entries.append((key, sample.value))
        for prefix in self._prefixes - files.keys():
            files[prefix] = []
        self._prefixes = set(files)
        for prefix, entries in files.items():
            _replace_file(self._directory / f"{prefix}_{self.tag}.db", entries)

    def _publish_or_warn(self) -> None:
        try:
            self.publish()
        except OSError as exc:  # the directory gone or full: the next round tries again
            logger.warning("metrics snapshot for the other workers not written: %s", exc)

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(PUBLISH_SECONDS)
                self._publish_or_warn()

        self._publisher = BackgroundTask("metrics-publisher", loop)
        self._publisher.start()

    async def stop(self) -> None:
        """Leave this worker's final counters (totals must not drop) and remove its gauges."""
        if self._publisher is not None:
            await self._publisher.cancel()
        self._publish_or_warn()
        for path in _gauge_files(self._directory):
            if os.path.basename(path).endswith(f"_{self.tag}.db"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)


def remove_dead_gauges(directory: Path) -> None:
    """Drop the gauges of exited workers (one that crashed could not remove its own)."""
    for path in _gauge_files(directory):
        if not _alive(_pid_of(path)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


class _Merged(Collector):
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        files = glob.glob(str(self._directory / "*.db"))
        # The snapshots' histogram buckets are cumulative already: sum them as they are.
        merged = MultiProcessCollector.merge(files, accumulate=False)  # type: ignore[no-untyped-call]
        counts: dict[str, dict[str, float]] = {}
        for metric in merged:
            yield metric
            if metric.name == "relaygate_cache_requests":
                for sample in metric.samples:
                    by_result = counts.setdefault(sample.labels["model"], {})
                    by_result[sample.labels["result"]] = sample.value
        if counts:
            yield hit_ratios(counts)


def _replace_file(path: Path, entries: list[tuple[str, float]]) -> None:
    partial = path.with_name(path.name + ".partial")  # not *.db: never merged half-written
    with contextlib.suppress(FileNotFoundError):
        os.remove(partial)
    values = MmapedDict(str(partial))  # type: ignore[no-untyped-call]
    try:
        for key, value in entries:
            values.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    finally:
        values.close()  # type: ignore[no-untyped-call]
    os.replace(partial, path)


def _gauge_files(directory: Path) -> list[str]:
    return glob.glob(str(directory / "gauge_*_*.db"))


def _pid_of(path: str) -> int:
    # gauge_<mode>_<pid>-<tag>.db
    owner = os.path.basename(path).split("_")[2]
    return int(owner.split("-")[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
