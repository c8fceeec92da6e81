"""The ledger writer: batches, spill to disk while the database is down, replay, drain."""

from __future__ import annotations

import asyncio
import fcntl
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from tests.waiting import eventually

from relaygate.accounting import LedgerWriter, SpillFile
from relaygate.settings.accounting import LedgerSettings
from relaygate.store import LedgerRow, StoreError, StoreUnavailableError


class FakeLedgerStore:
    """Keeps rows by id (idempotent like the real stores); can be switched off."""

    def __init__(self) -> None:
        self.rows: dict[str, LedgerRow] = {}
        self.batches: list[int] = []
        self.down = False
        self.broken = False
        self.delay = 0.0

    async def insert_rows(self, rows: Sequence[LedgerRow]) -> int:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise StoreUnavailableError("database is down")
        if self.broken:
            raise StoreError("a bug in a query")
        self.batches.append(len(rows))
        new = [r for r in rows if r.id not in self.rows]
        self.rows.update((r.id, r) for r in rows)
        return len(new)


def row(n: int = 0) -> LedgerRow:
    return LedgerRow(
        id=uuid.uuid4().hex,
        request_id=f"req_{n}",
        created_at=datetime(2031, 5, 6, tzinfo=UTC),
        key_name="k",
        route="openai.chat",
        model_requested="m",
        model_used="m",
        deployment="m#0",
        status=200,
        outcome="ok",
        error_kind=None,
        attempts=1,
        stream=False,
        input_tokens=n,
        output_tokens=1,
        cache_read_tokens=0,
        cache_write_tokens=0,
        cost_usd=0.001,
        latency_ms=1.0,
        upstream_ms=0.5,
        ttft_ms=None,
        cache_hit=False,
    )


def writer(
    store: FakeLedgerStore, home: Path, **settings: object
) -> tuple[LedgerWriter, SpillFile]:
    options: dict[str, object] = {
        "batch_size": 50,
        "flush_interval_seconds": 0.02,
        "retry_seconds": 0.05,
        **settings,
    }
    spill = SpillFile(home, "ledger-spill.jsonl")
    return LedgerWriter(store, spill, LedgerSettings.model_validate(options)), spill  # type: ignore[arg-type]


async def test_rows_are_written_in_batches(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    ledger, _ = writer(store, tmp_path)
    await ledger.start()
    rows = [row(i) for i in range(420)]
    for r in rows:
        ledger.record(r)
    await eventually(lambda: len(store.rows) == 420)
    await ledger.stop()
    assert max(store.batches) <= 50
    assert len(store.batches) < 20
    assert ledger.stats.written == 420 and ledger.stats.spilled == 0


async def test_record_never_awaits_or_raises_even_when_the_store_is_broken(
    tmp_path: Path,
) -> None:
    store = FakeLedgerStore()
    store.broken = True
    ledger, spill = writer(store, tmp_path)
    await ledger.start()
    for i in range(10):
        assert ledger.record(row(i)) is None
    await eventually(lambda: ledger.stats.spilled == 10)
    await ledger.stop()
    assert not store.rows
    lines = spill.live_path.read_bytes().splitlines()
    assert len(lines) == 10 and orjson.loads(lines[0])["request_id"] == "req_0"


async def test_an_outage_spills_then_replays_every_row_exactly_once(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    ledger, _ = writer(store, tmp_path)
    await ledger.start()
    rows = [row(i) for i in range(300)]
    for r in rows[:100]:
        ledger.record(r)
    await eventually(lambda: len(store.rows) == 100)
    store.down = True
    for r in rows[100:200]:
        ledger.record(r)
    await eventually(lambda: ledger.stats.spilled == 100)
    assert not ledger.stats.healthy
    store.down = False
    for r in rows[200:]:
        ledger.record(r)
    await eventually(lambda: len(store.rows) == 300)
    await ledger.stop()
    assert set(store.rows) == {r.id for r in rows}
    assert ledger.stats.replayed >= 100
    assert not list(tmp_path.glob("ledger-spill.jsonl.*"))


async def test_a_full_queue_spills_instead_of_blocking(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    ledger, _ = writer(store, tmp_path, queue_size=10, batch_size=5)
    for i in range(25):  # the writer task is not running: the queue fills up
        ledger.record(row(i))
    assert ledger.queued == 10 and ledger.stats.spilled == 15
    await ledger.start()
    await eventually(lambda: len(store.rows) == 25)
    await ledger.stop()


async def test_stop_drains_the_queue(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    ledger, _ = writer(store, tmp_path, flush_interval_seconds=60, batch_size=1000)
    await ledger.start()
    for i in range(123):
        ledger.record(row(i))
    await asyncio.sleep(0.05)  # room for a wrong early write (it must not come)
    assert not store.rows
    await ledger.stop()
    assert len(store.rows) == 123


async def test_stop_with_the_database_down_leaves_every_row_on_disk(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    store.down = True
    ledger, _ = writer(store, tmp_path, flush_interval_seconds=60, batch_size=1000)
    await ledger.start()
    for i in range(40):
        ledger.record(row(i))
    await ledger.stop()
    files = list(tmp_path.glob("ledger-spill.jsonl.*"))
    assert sum(len(f.read_bytes().splitlines()) for f in files) == 40

    store.down = False
    again, _ = writer(store, tmp_path)
    await again.start()
    await eventually(lambda: len(store.rows) == 40)
    await again.stop()
    assert not list(tmp_path.glob("ledger-spill.jsonl.*"))


async def test_replay_skips_a_torn_line_and_files_held_by_live_processes(tmp_path: Path) -> None:
    good = [row(i) for i in range(3)]
    dead = tmp_path / "ledger-spill.jsonl.99999.dead"
    lines = [orjson.dumps(r.to_json()) for r in good]
    dead.write_bytes(b"\n".join(lines) + b'\n{"id": "torn')
    alive = tmp_path / "ledger-spill.jsonl.88888.live"
    alive.write_bytes(orjson.dumps(row(9).to_json()) + b"\n")
    with alive.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        store = FakeLedgerStore()
        ledger, _ = writer(store, tmp_path)
        await ledger.start()
        await eventually(lambda: len(store.rows) == 3)
        await asyncio.sleep(0.1)  # room for a wrong replay of the live file (it must not come)
        await ledger.stop()
        assert set(store.rows) == {r.id for r in good}
        assert not dead.exists() and alive.exists()


async def test_a_hanging_database_times_out_and_spills(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    store.delay = 1.0
    ledger, _ = writer(store, tmp_path, write_timeout_seconds=0.05)
    await ledger.start()
    ledger.record(row())
    await eventually(lambda: ledger.stats.spilled == 1)
    store.delay = 0.0
    await eventually(lambda: len(store.rows) == 1)
    await ledger.stop()


def test_spill_files_are_per_process(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path, "ledger-spill.jsonl")
    spill.append([row()])
    assert f".{os.getpid()}." in spill.live_path.name
    spill.close()


def test_a_spill_file_replayed_before_its_writer_locked_it_loses_no_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process may find a brand-new spill file between its creation and its lock, replay
    # it (empty) and delete it: rows written after that must still land in a file on disk.
    other = SpillFile(tmp_path, "ledger-spill.jsonl")
    spill = SpillFile(tmp_path, "ledger-spill.jsonl")
    real_flock = fcntl.flock
    raced: list[bool] = []

    def racing_flock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and not raced:
            raced.append(True)
            for claimed in other.claim_pending():
                claimed.done()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", racing_flock)
    spill.append([row(), row()])
    monkeypatch.undo()
    spill.close()
    claimed = SpillFile(tmp_path, "ledger-spill.jsonl").claim_pending()
    assert raced
    assert sum(len(b) for f in claimed for b in f.batches(100)) == 2
    for f in claimed:
        f.release()  # close the handle (an unclosed file is a ResourceWarning, an error here)
