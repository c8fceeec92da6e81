"""The key cache's snapshot on disk: hashes only, private, atomic, and served when the database is
down at start (issue 8, item 7)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaygate.auth.cache import KeyCache, KeysUnavailableError
from relaygate.auth.keys import generate_admin_token, hash_key, new_api_key
from relaygate.auth.snapshot import SNAPSHOT_FILE, load_snapshot
from relaygate.core.errors import AuthenticationError
from relaygate.store import KeySpec, KeyStore, open_store


@pytest.fixture
async def store() -> AsyncIterator[KeyStore]:
    s = await open_store("sqlite:///:memory:")
    yield s
    await s.close()


async def add_key(store: KeyStore, name: str, **fields: object) -> str:
    made = new_api_key()
    await store.create_key(
        KeySpec(name=name, key_hash=made.key_hash, key_prefix=made.key_prefix, **fields)  # type: ignore[arg-type]
    )
    return made.raw_key


async def saved_cache(store: KeyStore, path: Path) -> KeyCache:
    cache = KeyCache(store, snapshot_path=path)
    await cache.reload()
    return cache


async def test_every_load_saves_a_private_snapshot_without_raw_keys(
    store: KeyStore, tmp_path: Path
) -> None:
    raw = await add_key(store, "one", allowed_models=["mock-gpt"])
    token = generate_admin_token()
    await store.create_admin_token(hash_key(token))
    path = tmp_path / "home" / SNAPSHOT_FILE
    await saved_cache(store, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert raw not in text and token not in text
    data = json.loads(text)
    assert [k["key_hash"] for k in data["keys"]] == [hash_key(raw)]
    assert data["admin_token_hashes"] == [hash_key(token)]
    assert [p.name for p in path.parent.iterdir()] == [SNAPSHOT_FILE]  # no staged file left

    second = await add_key(store, "two")
    cache = KeyCache(store, snapshot_path=path)
    await cache.reload()
    assert hash_key(second) in path.read_text()


async def test_a_loaded_snapshot_authenticates_and_keeps_revocations(
    store: KeyStore, tmp_path: Path
) -> None:
    live = await add_key(store, "live", allowed_models=["mock-gpt"])
    gone = await add_key(store, "gone")
    await store.revoke_key("gone")
    token = generate_admin_token()
    await store.create_admin_token(hash_key(token))
    path = tmp_path / SNAPSHOT_FILE
    await saved_cache(store, path)

    cache = KeyCache(store, snapshot_path=path)
    assert cache.describe() == "none"
    assert cache.load_snapshot() is True
    assert cache.authenticate(live).allowed_models == ("mock-gpt",)
    with pytest.raises(AuthenticationError, match="revoked"):
        cache.authenticate(gone)
    with pytest.raises(AuthenticationError, match="Invalid API key"):
        cache.authenticate(new_api_key().raw_key)
    cache.authenticate_admin(token)
    assert cache.describe().startswith("snapshot (2 keys, saved at ")
    assert cache.version is None  # the first refresh reloads from the store

    await cache.reload()
    assert cache.describe() == "database"


async def test_without_keys_loaded_requests_get_503_not_401(store: KeyStore) -> None:
    cache = KeyCache(store, snapshot_path=None)
    assert cache.load_snapshot() is False
    for check in (cache.authenticate, cache.authenticate_admin):
        with pytest.raises(KeysUnavailableError) as info:
            check("rg-something")
        assert info.value.status == 503
        assert "database is unreachable" in info.value.message
    with pytest.raises(AuthenticationError):
        cache.authenticate(None)  # no key at all is still the caller's mistake


def test_a_missing_or_broken_snapshot_is_no_snapshot(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT_FILE
    assert load_snapshot(path) is None
    path.write_text("{not json")
    path.chmod(0o600)
    assert load_snapshot(path) is None


async def test_a_snapshot_others_can_write_is_refused(store: KeyStore, tmp_path: Path) -> None:
    await add_key(store, "one")
    path = tmp_path / SNAPSHOT_FILE
    await saved_cache(store, path)
    assert load_snapshot(path) is not None
    os.chmod(path, 0o666)
    assert load_snapshot(path) is None
