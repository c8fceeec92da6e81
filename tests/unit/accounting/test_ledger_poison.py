"""A row the database rejects for its values is quarantined to the dead-letter file; the rest of
its batch (and of any spill file holding it) is written. An unreachable database is not that:
its rows still spill and replay."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from tests.unit.accounting.test_ledger_writer import FakeLedgerStore, row, writer
from tests.waiting import eventually

from relaygate.accounting import SpillFile
from relaygate.store import LedgerRow, StoreDataError

DEAD_LETTER = "ledger-dead-letter.jsonl"


class PoisonStore(FakeLedgerStore):
    """Rejects, like a database, any statement holding a row whose request id says "poison"."""

    def __init__(self) -> None:
        super().__init__()
        self.statements = 0

    async def insert_rows(self, rows: Sequence[LedgerRow]) -> int:
        self.statements += 1
        if not self.down and any(r.request_id.startswith("poison") for r in rows):
            raise StoreDataError("PostgreSQL rejected the data: invalid byte sequence")
        return await super().insert_rows(rows)


def poison(n: int) -> LedgerRow:
    return dataclasses.replace(row(n), request_id=f"poison_{n}")


def dead_letters(home: Path) -> list[dict[str, object]]:
    path = home / DEAD_LETTER
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def test_a_rejected_row_is_quarantined_and_its_batch_written(tmp_path: Path) -> None:
    store = PoisonStore()
    ledger, _ = writer(store, tmp_path, batch_size=64)
    rows = [row(i) for i in range(60)]
    bad = [poison(7), poison(41)]
    batch = [*rows[:7], bad[0], *rows[7:40], bad[1], *rows[40:]]
    for r in batch:
        ledger.record(r)
    await ledger.flush()
    assert set(store.rows) == {r.id for r in rows}
    letters = dead_letters(tmp_path)
    assert [letter["row"]["id"] for letter in letters] == [r.id for r in bad]  # type: ignore[index]
    assert all("invalid byte sequence" in str(letter["error"]) for letter in letters)
    assert LedgerRow.from_json(letters[0]["row"]) == bad[0]  # type: ignore[arg-type]
    stats = ledger.stats
    assert (stats.quarantined, stats.written, stats.spilled, stats.healthy) == (2, 60, 0, True)
    assert store.statements < 30  # halving, not one statement per row
    await ledger.stop()


async def test_a_spill_file_holding_a_rejected_row_replays_the_rest(tmp_path: Path) -> None:
    rows = [row(i) for i in range(5)]
    spilled = SpillFile(tmp_path, "ledger-spill.jsonl")
    spilled.append([rows[0], poison(1), *rows[1:]])
    spilled.close()
    store = PoisonStore()
    ledger, _ = writer(store, tmp_path)
    await ledger.start()
    await eventually(lambda: len(store.rows) == 5)
    await eventually(lambda: not list(tmp_path.glob("ledger-spill.jsonl.*")))
    await ledger.stop()
    assert [letter["row"]["request_id"] for letter in dead_letters(tmp_path)] == ["poison_1"]  # type: ignore[index]
    assert ledger.stats.healthy


async def test_an_unreachable_database_still_spills_and_quarantines_nothing(
    tmp_path: Path,
) -> None:
    store = PoisonStore()
    store.down = True
    ledger, _ = writer(store, tmp_path)
    await ledger.start()
    for r in [row(0), poison(1), row(2)]:
        ledger.record(r)
    await eventually(lambda: ledger.stats.spilled == 3)
    assert not ledger.stats.healthy and ledger.stats.quarantined == 0
    assert not dead_letters(tmp_path)
    store.down = False
    await eventually(lambda: len(store.rows) == 2)
    await ledger.stop()
    assert len(dead_letters(tmp_path)) == 1 and ledger.stats.quarantined == 1


async def test_an_unwritable_dead_letter_file_counts_the_row_as_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / DEAD_LETTER).mkdir()  # a directory: appending to it fails
    store = PoisonStore()
    ledger, _ = writer(store, tmp_path)
    ledger.record(poison(1))
    ledger.record(row(2))
    await ledger.flush()
    assert len(store.rows) == 1
    assert ledger.stats.dropped == 1 and ledger.stats.quarantined == 0
    assert "ledger rows DROPPED: 1 row(s) costing $0.001000" in caplog.text
    await ledger.stop()
