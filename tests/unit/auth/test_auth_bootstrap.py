from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaygate.auth.bootstrap import CREDENTIALS_FILE, bootstrap_if_empty
from relaygate.auth.cache import KeyCache
from relaygate.auth.keys import hash_key, new_api_key
from relaygate.store import KeyRecord, KeySpec, KeyStore, StoreError, open_store
from relaygate.store.sqlite import SqliteKeyStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'relaygate.db'}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[KeyStore]:
    s = await open_store(db_url)
    yield s
    await s.close()


async def test_first_start_creates_private_credentials(store: KeyStore, tmp_path: Path) -> None:
    home = tmp_path / "home" / ".relaygate"
    result = await bootstrap_if_empty(store, home)

    assert result is not None
    assert result.api_key.startswith("rg-")
    assert result.admin_token.startswith("rgadmin-")
    assert result.path == home / CREDENTIALS_FILE
    assert mode(result.path) == 0o600
    assert mode(home) == 0o700
    text = result.path.read_text()
    assert f"RELAYGATE_API_KEY={result.api_key}\n" in text
    assert f"RELAYGATE_ADMIN_TOKEN={result.admin_token}\n" in text
    assert sorted(p.name for p in home.iterdir()) == [CREDENTIALS_FILE]

    record = await store.get_key_by_name("default")
    assert record == result.key
    assert record is not None
    assert record.key_hash == hash_key(result.api_key)
    assert await store.list_admin_token_hashes() == [hash_key(result.admin_token)]

    cache = KeyCache(store)
    await cache.start()
    try:
        assert cache.authenticate(result.api_key).name == "default"
        cache.authenticate_admin(result.admin_token)
    finally:
        await cache.stop()


async def test_second_start_creates_and_rewrites_nothing(store: KeyStore, tmp_path: Path) -> None:
    first = await bootstrap_if_empty(store, tmp_path)
    assert first is not None
    before = (first.path.read_text(), first.path.stat().st_mtime_ns)

    assert await bootstrap_if_empty(store, tmp_path) is None
    assert (first.path.read_text(), first.path.stat().st_mtime_ns) == before
    assert await store.count_keys() == 1


async def test_a_store_with_keys_is_not_bootstrapped(store: KeyStore, tmp_path: Path) -> None:
    made = new_api_key()
    await store.create_key(KeySpec(name="mine", key_hash=made.key_hash, key_prefix="rg-x"))
    assert await bootstrap_if_empty(store, tmp_path / "home") is None
    assert not (tmp_path / "home").exists()
    assert await store.has_admin_token() is False


async def test_a_store_with_only_an_admin_token_is_not_bootstrapped(
    store: KeyStore, tmp_path: Path
) -> None:
    await store.create_admin_token(hash_key("rgadmin-existing"))
    assert await bootstrap_if_empty(store, tmp_path) is None
    assert await store.count_keys() == 0


async def test_a_stale_file_from_a_wiped_database_is_replaced(
    store: KeyStore, tmp_path: Path
) -> None:
    stale = tmp_path / CREDENTIALS_FILE
    stale.write_text("RELAYGATE_API_KEY=rg-old\n")
    stale.chmod(0o644)
    result = await bootstrap_if_empty(store, tmp_path)
    assert result is not None
    assert "rg-old" not in stale.read_text()
    assert result.api_key in stale.read_text()
    assert mode(stale) == 0o600


async def test_two_processes_starting_at_once_bootstrap_once(db_url: str, tmp_path: Path) -> None:
    stores = [await open_store(db_url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(bootstrap_if_empty(s, tmp_path) for s in stores))
    finally:
        for s in stores:
            await s.close()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].api_key in (tmp_path / CREDENTIALS_FILE).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db", CREDENTIALS_FILE]


class FailingStore(SqliteKeyStore):
    async def bootstrap(self, admin_token_hash: str, spec: KeySpec) -> KeyRecord | None:
        raise StoreError("database went away")


async def test_a_store_failure_leaves_no_file(tmp_path: Path) -> None:
    async with FailingStore(":memory:") as store:
        with pytest.raises(StoreError, match="went away"):
            await bootstrap_if_empty(store, tmp_path / "home")
    assert list((tmp_path / "home").iterdir()) == []


async def test_an_unusable_home_fails_before_touching_the_store(
    store: KeyStore, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(OSError):  # noqa: PT011
        await bootstrap_if_empty(store, blocker / "home")
    assert await store.count_keys() == 0
    assert await store.has_admin_token() is False
