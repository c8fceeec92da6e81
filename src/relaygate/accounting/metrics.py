"""The ledger writer's counters as Prometheus metrics, read only when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relaygate.accounting.ledger import LedgerWriter


class LedgerCollector(Collector):
    def __init__(self, writer: LedgerWriter) -> None:
        self._writer = writer

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self._writer.stats
        yield GaugeMetricFamily(
            "relaygate_ledger_queued_rows",
            "Ledger rows waiting in memory",
            value=self._writer.queued,
        )
        yield GaugeMetricFamily(
            "relaygate_ledger_healthy",
            "1 while the ledger database accepts writes, 0 while rows spill to disk",
            value=1 if stats.healthy else 0,
        )
        spill = self._writer.spill
        yield GaugeMetricFamily(
            "relaygate_ledger_spill_bytes",
            "Bytes in the ledger spill files of this home (alert well before spill_max_bytes)",
            value=spill.bytes_used,
        )
        yield GaugeMetricFamily(
            "relaygate_ledger_spill_max_bytes",
            "The cap on the ledger spill files (accounting.ledger.spill_max_bytes)",
            value=spill.max_bytes,
        )
        for name, help_text, value in (
            ("recorded_rows", "Ledger rows recorded by requests", stats.recorded),
            ("written_rows", "Ledger rows written to the database", stats.written),
            ("spilled_rows", "Ledger rows spilled to the local file", stats.spilled),
            ("replayed_rows", "Spilled ledger rows replayed into the database", stats.replayed),
            (
                "quarantined_rows",
                "Ledger rows the database rejected, moved to the dead-letter file",
                stats.quarantined,
            ),
            (
                "dropped_rows",
                "Ledger rows lost: database down, spill files at their cap and memory queue full",
                stats.dropped,
            ),
            ("batches", "Ledger batches written", stats.batches),
        ):
            yield CounterMetricFamily(f"relaygate_ledger_{name}", help_text, value=value)
