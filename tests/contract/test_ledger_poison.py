"""The ledger writer on each real database: rows the database rejects for their values are
quarantined to the dead-letter file and the rest of their batch is written."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
from tests.unit.accounting.test_ledger_writer import row

from relaygate.accounting import LedgerWriter, SpillFile
from relaygate.settings.accounting import LedgerSettings
from relaygate.store import LedgerStore

SETTINGS = LedgerSettings(batch_size=100, flush_interval_seconds=0.02, retry_seconds=0.1)


def dead_letters(home: Path) -> list[dict[str, object]]:
    path = home / SETTINGS.dead_letter_file
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def test_rows_the_database_rejects_are_quarantined_and_the_rest_written(
    ledger: LedgerStore, key_store_url: str, tmp_path: Path
) -> None:
    writer = LedgerWriter(ledger, SpillFile(tmp_path, "ledger-spill.jsonl"), SETTINGS)
    good = [row(i) for i in range(40)]
    no_route = dataclasses.replace(row(100), route=None)  # a NOT NULL column
    too_big = dataclasses.replace(row(101), input_tokens=2**63)  # beyond a 64-bit integer
    rejected = [no_route, too_big]
    if key_store_url.startswith("postgres"):  # PostgreSQL text cannot hold U+0000
        rejected.append(dataclasses.replace(row(102), key_name="team\x00a"))
    for r in [*good[:10], rejected[0], *good[10:30], *rejected[1:], *good[30:]]:
        writer.record(r)
    await writer.flush()
    await writer.stop()
    assert await ledger.count_rows() == 40
    assert {r.id for r in await ledger.recent_rows(100)} == {r.id for r in good}
    letters = dead_letters(tmp_path)
    assert sorted(letter["row"]["id"] for letter in letters) == sorted(r.id for r in rejected)  # type: ignore[index]
    assert writer.stats.quarantined == len(rejected) and writer.stats.healthy
    assert writer.stats.spilled == 0 and not list(tmp_path.glob("ledger-spill.jsonl.*"))
