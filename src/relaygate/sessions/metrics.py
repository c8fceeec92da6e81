"""Session counters as Prometheus metrics, read only when scraped (no labels: one backend)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relaygate.sessions.book import SessionBook
from relaygate.sessions.memory import MemorySessionStore


class SessionCollector(Collector):
    def __init__(self, book: SessionBook) -> None:
        self._book = book

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self._book.stats
        for name, help_text, value in (
            ("requests", "Requests that named a session (x-relaygate-session)", stats.requests),
            ("turns_recorded", "Turns added to sessions after a successful answer", stats.recorded),
            ("turns_trimmed", "Stored turns dropped by max_turns or max_tokens", stats.trimmed),
            (
                "record_failures",
                "Answered turns the session store could not record (logged)",
                stats.failures,
            ),
        ):
            yield CounterMetricFamily(f"relaygate_session_{name}", help_text, value=value)
        store = self._book.store
        if isinstance(store, MemorySessionStore):
            yield GaugeMetricFamily(
                "relaygate_sessions_active", "Sessions held in memory", value=len(store)
            )
            yield GaugeMetricFamily(
                "relaygate_sessions_bytes",
                "Estimated bytes of the turns held in memory (sessions.max_memory_bytes caps it)",
                value=store.bytes_held,
            )
            yield CounterMetricFamily(
                "relaygate_sessions_evicted",
                "Sessions dropped from memory at max_sessions or max_memory_bytes",
                value=store.evicted,
            )
