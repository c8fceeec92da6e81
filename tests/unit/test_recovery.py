"""Reconnecting to a database that was unreachable at start (issue 8, item 7)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from relaygate.auth.cache import KeyCache
from relaygate.recovery import DatabaseRecovery, ReadinessCollector, readiness
from relaygate.store import KeyStore, StoreUnavailableError, create_ledger_store, open_store


@pytest.fixture
async def store() -> AsyncIterator[KeyStore]:
    s = await open_store("sqlite:///:memory:")
    yield s
    await s.close()


async def test_retries_with_backoff_until_the_database_answers(store: KeyStore) -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def reconnect() -> None:
        calls.append(loop.time())
        if len(calls) < 4:
            raise StoreUnavailableError("down")

    recovery = DatabaseRecovery(reconnect, "db", first_delay=0.01, max_delay=0.04)
    assert recovery.reachable is False
    recovery.start(StoreUnavailableError("down at start"))
    async with asyncio.timeout(5):
        while not recovery.reachable:
            await asyncio.sleep(0.01)
    await recovery.stop()
    assert len(calls) == 4 and recovery.attempts == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[-1] > gaps[0]  # backing off


async def test_readiness_follows_keys_and_database(store: KeyStore) -> None:
    keys = KeyCache(store)
    down = DatabaseRecovery(lambda: asyncio.sleep(0), "db")
    assert readiness(keys, down) == (
        False,
        {"status": "not ready", "ready": False, "database": "unreachable", "keys": "none"},
    )
    gauges = {m.name: m.samples[0].value for m in ReadinessCollector(keys, down).collect()}
    assert gauges == {"relaygate_ready": 0, "relaygate_database_up": 0}
    await keys.reload()
    assert readiness(keys, DatabaseRecovery()) == (
        True,
        {"status": "ready", "ready": True, "database": "ok", "keys": "database"},
    )


async def test_a_never_connected_postgres_store_reports_an_outage() -> None:
    ledger = create_ledger_store("postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(StoreUnavailableError, match="never connected"):
        await ledger.count_rows()
