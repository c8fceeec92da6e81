"""The spill files' size cap: an alarm as it nears and reaches the cap, then rows wait in the
memory queue for the database, and only past that are they dropped, counted and logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client.registry import CollectorRegistry
from tests.unit.accounting.test_ledger_writer import FakeLedgerStore, row
from tests.waiting import eventually

from relaygate.accounting import LedgerWriter, SpillFile
from relaygate.accounting.metrics import LedgerCollector
from relaygate.settings.accounting import AccountingSettings, LedgerSettings

ROW_BYTES = len(orjson.dumps(row(0).to_json())) + 1


def capped_writer(
    store: FakeLedgerStore, home: Path, rows_on_disk: int, **settings: object
) -> tuple[LedgerWriter, SpillFile]:
    options: dict[str, object] = {
        "batch_size": 5,
        "flush_interval_seconds": 0.02,
        "retry_seconds": 0.2,
        **settings,
    }
    spill = SpillFile(home, "ledger-spill.jsonl", max_bytes=rows_on_disk * ROW_BYTES + 10)
    return LedgerWriter(store, spill, LedgerSettings.model_validate(options)), spill  # type: ignore[arg-type]


def test_the_default_cap_is_512_mib() -> None:
    assert AccountingSettings().ledger.spill_max_bytes == 512 * 1024 * 1024


def test_a_spill_file_writes_only_the_rows_that_fit(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path, "s", max_bytes=3 * ROW_BYTES + 10)
    assert spill.append([row(i) for i in range(2)]) == 2
    assert spill.append([row(i) for i in range(2, 5)]) == 1
    assert spill.full and spill.bytes_used == 3 * ROW_BYTES <= spill.max_bytes
    assert spill.append([row(9)]) == 0
    other = SpillFile(tmp_path, "s", max_bytes=3 * ROW_BYTES + 10)  # another process, same home
    assert other.append([row(10)]) == 0
    spill.close()
    for path in tmp_path.glob("s.*"):
        path.unlink()  # replayed
    assert other.append([row(11)]) == 1 and not other.full
    other.close()


async def test_past_the_cap_rows_wait_in_memory_then_drop_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeLedgerStore()
    store.down = True
    ledger, spill = capped_writer(store, tmp_path, rows_on_disk=10, queue_size=20)
    rows = [row(i) for i in range(45)]
    with caplog.at_level(logging.WARNING, logger="relaygate.ledger"):
        await ledger.start()
        for r in rows:
            ledger.record(r)
            await asyncio.sleep(0)
        await eventually(lambda: ledger.stats.spilled == 10 and ledger.stats.dropped == 15)
        assert ledger.queued == 20  # held in memory for the next retry
        assert "passed 80% of their cap" in caplog.text
        assert "reached their cap" in caplog.text
        await eventually(lambda: "ledger rows DROPPED" in caplog.text)
        assert "costing $0.0" in caplog.text
        store.down = False
        await eventually(lambda: len(store.rows) == 30)
        await ledger.stop()
    assert ledger.stats.written + ledger.stats.dropped == 45
    kept = {r.id for r in rows} - set(store.rows)
    assert len(kept) == ledger.stats.dropped == 15
    assert spill.bytes_used == 0 and not spill.full


class Spinning(BaseException):
    """Raised by a timer signal: the event loop never got control back."""


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    # A writer spinning without awaiting blocks the event loop, so no asyncio timeout can fire.
    def bark(signum: int, frame: object) -> None:
        raise Spinning(f"the event loop was blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, bark)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


async def test_a_held_queue_does_not_spin_the_writer(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    store.down = True
    calls = 0
    real_insert = store.insert_rows

    async def counting_insert(rows: object) -> int:
        nonlocal calls
        calls += 1
        return await real_insert(rows)  # type: ignore[arg-type]

    store.insert_rows = counting_insert  # type: ignore[method-assign]
    ledger, _ = capped_writer(store, tmp_path, rows_on_disk=1, queue_size=50, retry_seconds=0.3)
    with watchdog(5.0):
        await ledger.start()
        for i in range(40):
            ledger.record(row(i))
            await asyncio.sleep(0.01)  # requests keep coming while rows are held
        await asyncio.sleep(0.3)
        assert calls <= 6, calls  # about one attempt per retry_seconds, not one per request
        await ledger.stop()


async def test_shutdown_with_the_database_down_and_the_spill_full_counts_every_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeLedgerStore()
    store.down = True
    ledger, _ = capped_writer(store, tmp_path, rows_on_disk=4, flush_interval_seconds=60)
    await ledger.start()
    for i in range(12):
        ledger.record(row(i))
    with caplog.at_level(logging.ERROR, logger="relaygate.ledger"):
        await ledger.stop()
    assert ledger.stats.spilled == 4 and ledger.stats.dropped == 8
    reported = re.findall(r"DROPPED: (\d+) row\(s\) costing \$([\d.]+) are lost", caplog.text)
    assert sum(int(n) for n, _ in reported) == 8
    assert sum(float(cost) for _, cost in reported) == pytest.approx(0.008)
    assert "shutting down" in caplog.text


async def test_the_spill_and_loss_counters_are_exported(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    store.down = True
    ledger, spill = capped_writer(store, tmp_path, rows_on_disk=2, queue_size=1)
    for i in range(5):
        ledger.record(row(i))  # the writer task is not running: the queue holds one row
    registry = CollectorRegistry()
    registry.register(LedgerCollector(ledger))
    assert registry.get_sample_value("relaygate_ledger_spill_bytes") == spill.bytes_used > 0
    assert registry.get_sample_value("relaygate_ledger_spill_max_bytes") == spill.max_bytes
    assert registry.get_sample_value("relaygate_ledger_dropped_rows_total") == 2
    assert registry.get_sample_value("relaygate_ledger_quarantined_rows_total") == 0
    await ledger.stop()
