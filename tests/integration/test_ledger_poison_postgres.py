"""The ledger writer on the real PostgreSQL: a lost connection (the database going away) is not a
row the database rejects: nothing is quarantined, the batch spills to disk as before and is
replayed later (tests/contract/test_ledger_poison.py has the rejected rows)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
from tests.unit.accounting.test_ledger_writer import row
from tests.waiting import eventually

from relaygate.accounting import LedgerWriter, SpillFile
from relaygate.settings.accounting import LedgerSettings
from relaygate.store import create_ledger_store

pytestmark = pytest.mark.postgres
SETTINGS = LedgerSettings(batch_size=100, flush_interval_seconds=0.02, retry_seconds=0.1)


class Proxy:
    """A TCP relay to PostgreSQL that the test can cut, as if the server went away."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


def dead_letters(home: Path) -> list[dict[str, object]]:
    path = home / SETTINGS.dead_letter_file
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def test_a_lost_connection_spills_and_replays_without_quarantining(
    postgres_url: str, tmp_path: Path
) -> None:
    proxy = Proxy(urlsplit(postgres_url).port or 5432)
    port = await proxy.start()
    parts = urlsplit(postgres_url)
    via_proxy = urlunsplit(parts._replace(netloc=f"postgres@127.0.0.1:{port}"))
    store = create_ledger_store(via_proxy)
    await store.open()
    writer = LedgerWriter(store, SpillFile(tmp_path, "ledger-spill.jsonl"), SETTINGS)
    await writer.start()
    writer.record(row(1))
    await eventually(lambda: writer.stats.written == 1)
    await proxy.cut()
    rows = [row(i) for i in range(2, 12)]
    for r in rows:
        writer.record(r)
    await eventually(lambda: writer.stats.spilled == 10)
    await writer.stop()
    await store.close()
    assert writer.stats.quarantined == 0 and not dead_letters(tmp_path)

    direct = create_ledger_store(postgres_url)  # the database is back (no proxy in between)
    await direct.open()
    again = LedgerWriter(direct, SpillFile(tmp_path, "ledger-spill.jsonl"), SETTINGS)
    await again.start()
    await eventually(lambda: again.stats.replayed == 10)
    await again.stop()
    assert await direct.count_rows() == 11
    await direct.close()
