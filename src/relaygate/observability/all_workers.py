"""``/metrics`` of ``relaygate serve --workers N``: the whole gateway's totals, whichever worker
answers the scrape.

The parent sets ``PROMETHEUS_MULTIPROC_DIR`` to a private directory before the workers start, so
prometheus_client keeps every Counter, Gauge and Histogram value in a per-process file there (an
mmap write per update). Scrape-time collectors (callbacks reading in-process state) have no such
file: each worker copies their samples into files of its own every ``PUBLISH_SECONDS``. A scrape
refreshes the answering worker's copy, drops the gauges of workers that have exited and merges
every file: counters and histograms summed, gauges as ``Gauge(multiprocess_mode=...)`` or
``CALLBACK_GAUGES`` say. A single process never gets here and pays none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from relaygate.core.background import BackgroundTask
from relaygate.observability.cache_metrics import HIT_RATIO, hit_ratios

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
PUBLISH_SECONDS = 1.0
Aggregation = Literal["sum", "max", "min"]

CALLBACK_GAUGES: dict[str, Aggregation] = {
    # Each worker holds its own share: the gateway's is the sum.
    "relaygate_asyncio_tasks": "sum",
    "relaygate_deployment_outstanding": "sum",
    "relaygate_cache_bytes": "sum",
    "relaygate_cache_entries": "sum",
    "relaygate_ledger_queued_rows": "sum",
    "relaygate_sessions_active": "sum",
    "relaygate_sessions_bytes": "sum",
    # The worst worker is the one to see (or every worker sees the same value).
    "relaygate_deployment_latency_ewma_seconds": "max",
    "relaygate_event_loop_lag_seconds": "max",
    "relaygate_ledger_spill_bytes": "max",
    "relaygate_ledger_spill_max_bytes": "max",
    "relaygate_alerts_active": "max",
    "relaygate_key_budget_used_ratio": "max",
    # Up only while every worker is.
    "relaygate_ready": "min",
    "relaygate_database_up": "min",
    "relaygate_ledger_healthy": "min",
}
"""How each scrape-time gauge merges over the workers (unlisted ones are summed)."""
DERIVED = frozenset({HIT_RATIO})
"""Not merged but recomputed from merged counters (a ratio of sums, not a sum of ratios)."""


def multiprocess_dir() -> Path | None:
    """The directory the workers share their metrics in, or None for a single process."""
    value = os.environ.get(MULTIPROC_DIR_ENV)
    return Path(value) if value else None


class AllWorkers:
    """This worker's part in sharing metrics, and the merge a scrape answers with."""

    def __init__(self, directory: Path, callbacks: Callable[[], Iterable[Collector]]) -> None:
        self._directory = directory
        self._callbacks = callbacks
        # pid plus a random tag: a later process given a recycled pid keeps its own files.
        self._tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._publisher: BackgroundTask | None = None

    def render(self) -> bytes:
        self.publish()
        remove_dead_gauges(self._directory)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(self._directory))
        return generate_latest(registry)

    def publish(self) -> None:
        """Copy the scrape-time collectors' samples into this worker's files (each replaced
        whole, so a series that is gone from the collector is gone from the file)."""
        files: dict[str, list[tuple[str, float]]] = {}
        for collector in self._callbacks():
            for metric in collector.collect():
                if metric.name in DERIVED:
                    continue
                if metric.type == "gauge":
                    prefix = f"gauge_live{CALLBACK_GAUGES.get(metric.name, 'sum')}"
                else:
                    prefix = metric.type
                entries = files.setdefault(prefix, [])
                for sample in metric.samples:
                    if sample.name.endswith("_created"):
                        continue
                    labels = sample.labels
                    key = mmap_key(
                        metric.name,
                        sample.name,
                        list(labels),
                        list(labels.values()),
                        metric.documentation,
                    )
                    entries.append((key, sample.value))
        for prefix, entries in files.items():
            _replace_file(self._directory / f"{prefix}_{self._tag}.db", entries)

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(PUBLISH_SECONDS)
                self.publish()

        self._publisher = BackgroundTask("metrics-publisher", loop)
        self._publisher.start()

    async def stop(self) -> None:
        """Leave this worker's counters (their totals must not drop) and remove its gauges."""
        if self._publisher is not None:
            await self._publisher.cancel()
        self.publish()
        pid = os.getpid()
        for path in _live_gauge_files(self._directory):
            if _pid_of(path) == pid:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)


def remove_dead_gauges(directory: Path) -> None:
    """Drop the gauge files of exited workers (a worker that crashed could not do it itself)."""
    for path in _live_gauge_files(directory):
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
        counts: dict[str, dict[str, float]] = {}
        merged = MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        for metric in merged:
            yield metric
            if metric.name == "relaygate_cache_requests":
                for sample in metric.samples:
                    by_result = counts.setdefault(sample.labels["model"], {})
                    by_result[sample.labels["result"]] = sample.value
        yield hit_ratios(counts)


def _replace_file(path: Path, entries: list[tuple[str, float]]) -> None:
    partial = path.with_name(path.name + ".partial")  # not *.db: never merged half-written
    values = MmapedDict(str(partial))  # type: ignore[no-untyped-call]
    try:
        for key, value in entries:
            values.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    finally:
        values.close()  # type: ignore[no-untyped-call]
    os.replace(partial, path)


def _live_gauge_files(directory: Path) -> list[str]:
    return glob.glob(str(directory / "gauge_live*_*.db"))


def _pid_of(path: str) -> int:
    # gauge_<mode>_<pid>.db (prometheus_client's) or gauge_<mode>_<pid>-<tag>.db (ours)
    owner = os.path.basename(path).split("_")[2].removesuffix(".db")
    return int(owner.split("-")[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
