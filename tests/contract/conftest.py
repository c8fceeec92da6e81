"""Contract-suite fixtures: every KeyStore and LedgerStore implementation, opened on an empty
database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaygate.store import KeyStore, LedgerStore, create_ledger_store, open_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def key_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'relaygate.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def key_store(key_store_url: str) -> AsyncIterator[KeyStore]:
    store = await open_store(key_store_url)
    yield store
    await store.close()


@pytest.fixture
async def ledger(key_store_url: str) -> AsyncIterator[LedgerStore]:
    store = create_ledger_store(key_store_url)
    await store.open()
    yield store
    await store.close()
