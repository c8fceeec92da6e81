"""The KeyStore contract: SQLite and PostgreSQL must behave the same."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from relaygate.store import (
    DuplicateNameError,
    KeySpec,
    KeyStore,
    StoreError,
    create_key_store,
    open_store,
)


def spec(name: str = "team-a", **fields: object) -> KeySpec:
    secret = f"rg-{name}-{uuid.uuid4().hex}"
    return KeySpec(
        name=name,
        key_hash=hashlib.sha256(secret.encode()).hexdigest(),
        key_prefix=secret[:8],
        **fields,  # type: ignore[arg-type]
    )


def token_hash(token: str = "rgadmin-x") -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_a_new_store_is_empty(key_store: KeyStore) -> None:
    assert await key_store.count_keys() == 0
    assert await key_store.list_keys() == []
    assert await key_store.has_admin_token() is False
    assert await key_store.list_admin_token_hashes() == []
    assert isinstance(await key_store.keys_version(), int)


async def test_create_key_round_trips_every_field(key_store: KeyStore) -> None:
    expires = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    wanted = spec(
        "full",
        owner="alice",
        team="support",
        allowed_models=("mock-gpt", "mock-claude"),
        priority=7,
        rps=12.5,
        burst=30,
        rpm=600,
        tpm=5_000_000_000,
        max_concurrent=8,
        monthly_budget_usd=250.75,
        balance_usd=19.99,
        expires_at=expires,
    )
    before = datetime.now(UTC)
    created = await key_store.create_key(wanted)

    uuid.UUID(created.id)
    for field in wanted.__dataclass_fields__:
        assert getattr(created, field) == getattr(wanted, field), field
    assert created.disabled is False
    assert created.revoked_at is None
    assert created.created_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= created.created_at <= datetime.now(UTC)
    assert await key_store.get_key_by_name("full") == created


async def test_optional_fields_default_to_none(key_store: KeyStore) -> None:
    created = await key_store.create_key(spec("bare"))
    assert created.allowed_models == ()
    assert created.priority == 0
    assert (created.owner, created.rps, created.balance_usd, created.expires_at) == (
        None,
        None,
        None,
        None,
    )


async def test_unknown_name_is_none(key_store: KeyStore) -> None:
    await key_store.create_key(spec("known"))
    assert await key_store.get_key_by_name("unknown") is None
    assert await key_store.get_key_by_name("KNOWN") is None


async def test_duplicate_name_is_refused_and_changes_nothing(key_store: KeyStore) -> None:
    await key_store.create_key(spec("dup"))
    version = await key_store.keys_version()
    with pytest.raises(DuplicateNameError, match="a key named 'dup' already exists"):
        await key_store.create_key(spec("dup"))
    assert await key_store.count_keys() == 1
    assert await key_store.keys_version() == version


async def test_list_keys_is_oldest_first_and_counts_match(key_store: KeyStore) -> None:
    for name in ("c", "a", "b"):
        await key_store.create_key(spec(name))
    assert [r.name for r in await key_store.list_keys()] == ["c", "a", "b"]
    assert await key_store.count_keys() == 3


async def test_revoke_disables_for_good_and_keeps_the_row(key_store: KeyStore) -> None:
    await key_store.create_key(spec("gone"))
    assert await key_store.revoke_key("gone") is True
    revoked = await key_store.get_key_by_name("gone")
    assert revoked is not None
    assert revoked.disabled is True
    assert revoked.revoked_at is not None
    assert revoked.revoked

    assert await key_store.revoke_key("gone") is True
    again = await key_store.get_key_by_name("gone")
    assert again is not None
    assert again.revoked_at == revoked.revoked_at
    assert [r.name for r in await key_store.list_keys()] == ["gone"]
    with pytest.raises(DuplicateNameError):
        await key_store.create_key(spec("gone"))


async def test_revoke_unknown_is_false(key_store: KeyStore) -> None:
    version = await key_store.keys_version()
    assert await key_store.revoke_key("nobody") is False
    assert await key_store.keys_version() == version


async def test_update_key_changes_only_the_named_fields(key_store: KeyStore) -> None:
    original = await key_store.create_key(spec("upd", owner="bob", allowed_models=("a",)))
    updated = await key_store.update_key(
        "upd", allowed_models=["x", "y"], priority=3, balance_usd=5.5, disabled=True
    )
    assert updated is not None
    assert updated.allowed_models == ("x", "y")
    assert (updated.priority, updated.balance_usd, updated.disabled) == (3, 5.5, True)
    assert (updated.owner, updated.key_hash, updated.id) == ("bob", original.key_hash, original.id)
    assert updated.revoked_at is None
    assert await key_store.get_key_by_name("upd") == updated

    enabled = await key_store.update_key("upd", disabled=False)
    assert enabled is not None
    assert enabled.disabled is False


async def test_update_key_refuses_bad_changes(key_store: KeyStore) -> None:
    await key_store.create_key(spec("strict"))
    assert await key_store.update_key("missing", priority=1) is None
    with pytest.raises(ValueError, match="cannot update field"):
        await key_store.update_key("strict", key_hash="0" * 64)
    with pytest.raises(ValueError, match="timezone-aware"):
        await key_store.update_key("strict", expires_at=datetime(2030, 1, 1))
    await key_store.revoke_key("strict")
    with pytest.raises(ValueError, match="revoked and cannot be re-enabled"):
        await key_store.update_key("strict", disabled=False)
    record = await key_store.get_key_by_name("strict")
    assert record is not None
    assert record.disabled is True


async def test_every_change_bumps_the_version(key_store: KeyStore) -> None:
    versions = [await key_store.keys_version()]
    await key_store.create_key(spec("v"))
    versions.append(await key_store.keys_version())
    await key_store.update_key("v", priority=2)
    versions.append(await key_store.keys_version())
    await key_store.revoke_key("v")
    versions.append(await key_store.keys_version())
    await key_store.create_admin_token(token_hash())
    versions.append(await key_store.keys_version())
    assert versions == sorted(set(versions)), versions
    await key_store.get_key_by_name("v")
    await key_store.list_keys()
    assert await key_store.keys_version() == versions[-1]


async def test_admin_tokens_are_stored_as_given_hashes(key_store: KeyStore) -> None:
    await key_store.create_admin_token(token_hash("one"))
    await key_store.create_admin_token(token_hash("two"))
    assert await key_store.has_admin_token() is True
    assert await key_store.list_admin_token_hashes() == [token_hash("one"), token_hash("two")]
    with pytest.raises(StoreError):
        await key_store.create_admin_token(token_hash("one"))


async def test_bootstrap_creates_both_once(key_store: KeyStore) -> None:
    first = await key_store.bootstrap(token_hash(), spec("default"))
    assert first is not None
    assert first.name == "default"
    assert await key_store.list_admin_token_hashes() == [token_hash()]
    assert await key_store.bootstrap(token_hash("other"), spec("other")) is None
    assert await key_store.count_keys() == 1
    assert await key_store.list_admin_token_hashes() == [token_hash()]


async def test_bootstrap_is_refused_when_any_key_exists(key_store: KeyStore) -> None:
    await key_store.create_key(spec("existing"))
    assert await key_store.bootstrap(token_hash(), spec("default")) is None
    assert await key_store.has_admin_token() is False


async def test_concurrent_bootstraps_from_two_processes_make_one(key_store_url: str) -> None:
    stores = [await open_store(key_store_url) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(s.bootstrap(token_hash(f"t{i}"), spec(f"default-{i}")) for i, s in enumerate(stores))
        )
        assert sum(r is not None for r in results) == 1
        assert await stores[0].count_keys() == 1
        assert len(await stores[1].list_admin_token_hashes()) == 1
    finally:
        for store in stores:
            await store.close()


async def test_data_survives_reopen_and_migrations_run_once(key_store_url: str) -> None:
    async with create_key_store(key_store_url) as store:
        await store.create_key(spec("kept"))
        version = await store.keys_version()
    async with create_key_store(key_store_url) as store:
        assert [r.name for r in await store.list_keys()] == ["kept"]
        assert await store.keys_version() == version


async def test_concurrent_creates_in_one_store_all_land(key_store: KeyStore) -> None:
    names = [f"k{i}" for i in range(20)]
    await asyncio.gather(*(key_store.create_key(spec(n)) for n in names))
    assert sorted(r.name for r in await key_store.list_keys()) == sorted(names)


async def test_a_closed_store_raises_store_error(key_store_url: str) -> None:
    store = create_key_store(key_store_url)
    with pytest.raises(StoreError, match="not open"):
        await store.count_keys()
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.list_keys()
