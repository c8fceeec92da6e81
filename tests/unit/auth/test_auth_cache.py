from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from tests.waiting import eventually

from relaygate.auth import cache as cache_module
from relaygate.auth.cache import KeyCache, check_model
from relaygate.auth.keys import generate_admin_token, hash_key, new_api_key
from relaygate.core.errors import AuthenticationError, PermissionDeniedError
from relaygate.store import KeyRecord, KeySpec, KeyStore, StoreError, open_store


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store() -> AsyncIterator[KeyStore]:
    s = await open_store("sqlite:///:memory:")
    yield s
    await s.close()


async def add_key(store: KeyStore, name: str, **fields: object) -> tuple[str, KeyRecord]:
    made = new_api_key()
    record = await store.create_key(
        KeySpec(name=name, key_hash=made.key_hash, key_prefix=made.key_prefix, **fields)  # type: ignore[arg-type]
    )
    return made.raw_key, record


async def started(store: KeyStore, **options: object) -> KeyCache:
    cache = KeyCache(store, **options)  # type: ignore[arg-type]
    await cache.start()
    return cache


def auth_error(cache: KeyCache, raw: str | None) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        cache.authenticate(raw)
    assert info.value.status == 401
    return info.value


async def test_a_valid_key_authenticates_without_touching_the_store(store: KeyStore) -> None:
    raw, record = await add_key(store, "ok")
    cache = await started(store)
    await cache.stop()
    await store.close()
    assert cache.authenticate(raw) == record
    assert len(cache) == 1


@pytest.mark.parametrize("raw", [None, ""])
async def test_missing_key_says_how_to_send_it(store: KeyStore, raw: str | None) -> None:
    cache = await started(store)
    try:
        err = auth_error(cache, raw)
        assert err.message == "Missing API key: send it as x-api-key or Authorization: Bearer"
    finally:
        await cache.stop()


async def test_unknown_and_near_miss_keys_are_invalid(store: KeyStore) -> None:
    raw, _ = await add_key(store, "ok")
    cache = await started(store)
    try:
        for wrong in ("rg-" + "x" * 40, raw[:-1], raw + "a", raw.upper(), f" {raw}"):
            assert auth_error(cache, wrong).message == "Invalid API key"
    finally:
        await cache.stop()


async def test_revoked_and_disabled_keys_say_so(store: KeyStore) -> None:
    revoked, _ = await add_key(store, "revoked")
    disabled, _ = await add_key(store, "disabled")
    await store.revoke_key("revoked")
    await store.update_key("disabled", disabled=True)
    cache = await started(store)
    try:
        assert auth_error(cache, revoked).message == "This API key has been revoked"
        assert auth_error(cache, disabled).message == "This API key is disabled"
    finally:
        await cache.stop()


async def test_expiry_is_checked_against_the_clock_on_each_request(store: KeyStore) -> None:
    clock = Clock()
    expires = datetime.fromtimestamp(clock.now, UTC) + timedelta(hours=1)
    raw, record = await add_key(store, "temp", expires_at=expires)
    cache = await started(store, clock=clock)
    try:
        assert cache.authenticate(raw) == record
        clock.now += 3599
        assert cache.authenticate(raw) == record
        clock.now += 1
        message = auth_error(cache, raw).message
        assert message.startswith("This API key expired on ")
        assert expires.strftime("%Y-%m-%d %H:%M:%S UTC") in message
    finally:
        await cache.stop()


async def test_the_final_check_is_constant_time(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, record = await add_key(store, "ok")
    cache = await started(store)
    calls: list[tuple[str, str]] = []

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(cache_module.hmac, "compare_digest", spy)
    try:
        cache.authenticate(raw)
        assert calls == [(record.key_hash, hash_key(raw))]
    finally:
        await cache.stop()


async def test_refresh_reloads_only_after_a_change(store: KeyStore) -> None:
    cache = await started(store, refresh_seconds=3600)
    try:
        assert await cache.refresh() is False
        raw, _ = await add_key(store, "late")
        assert auth_error(cache, raw).message == "Invalid API key"
        assert await cache.refresh() is True
        assert cache.authenticate(raw).name == "late"
        assert await cache.refresh() is False
        await store.revoke_key("late")
        assert await cache.refresh() is True
        assert auth_error(cache, raw).message == "This API key has been revoked"
    finally:
        await cache.stop()


async def test_the_background_task_picks_up_changes(store: KeyStore) -> None:
    cache = await started(store, refresh_seconds=0.02)
    try:
        raw, _ = await add_key(store, "bg")
        await eventually(lambda: cache.version == 1 and len(cache) == 1)
        assert cache.authenticate(raw).name == "bg"
    finally:
        await cache.stop()


async def test_invalidate_wakes_the_refresher_at_once(store: KeyStore) -> None:
    cache = await started(store, refresh_seconds=3600)
    try:
        raw, _ = await add_key(store, "now")
        cache.invalidate()
        await eventually(lambda: len(cache) == 1, timeout=1.0)
        assert cache.authenticate(raw).name == "now"
    finally:
        await cache.stop()


async def test_a_failing_store_keeps_the_last_snapshot(
    store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    raw, _ = await add_key(store, "kept")
    cache = await started(store, refresh_seconds=0.01)
    caplog.set_level(logging.WARNING, logger="relaygate.auth")
    await store.close()
    await eventually(lambda: "key cache refresh failed" in caplog.text)
    assert cache.authenticate(raw).name == "kept"
    await cache.stop()
    await cache.stop()


async def test_start_fails_loudly_when_the_store_is_down(store: KeyStore) -> None:
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await KeyCache(store).start()


async def test_admin_tokens_are_checked_from_the_cache(store: KeyStore) -> None:
    token = generate_admin_token()
    await store.create_admin_token(hash_key(token))
    cache = await started(store)
    try:
        cache.authenticate_admin(token)
        with pytest.raises(AuthenticationError, match="Invalid admin token"):
            cache.authenticate_admin(token + "x")
        with pytest.raises(AuthenticationError, match="Missing admin token"):
            cache.authenticate_admin(None)
        raw, _ = await add_key(store, "api")
        await cache.refresh()
        with pytest.raises(AuthenticationError, match="Invalid admin token"):
            cache.authenticate_admin(raw)
    finally:
        await cache.stop()


async def test_check_model(store: KeyStore) -> None:
    _, limited = await add_key(store, "limited", allowed_models=("mock-gpt", "mock-fast"))
    _, open_key = await add_key(store, "open")
    check_model(limited, "mock-gpt")
    check_model(open_key, "anything")
    with pytest.raises(PermissionDeniedError) as info:
        KeyCache(store).check_model(limited, "mock-claude")
    assert info.value.status == 403
    assert info.value.param == "model"
    assert info.value.message == (
        "This key may not use model 'mock-claude'. Allowed: mock-gpt, mock-fast"
    )


def test_refresh_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        KeyCache(object(), refresh_seconds=0)  # type: ignore[arg-type]


async def test_a_key_is_found_by_name_for_its_queued_work_until_it_is_disabled(
    store: KeyStore,
) -> None:
    _, record = await add_key(store, "submitter")
    await add_key(store, "other")
    cache = await started(store)
    try:
        assert cache.by_name("submitter") == record
        with pytest.raises(AuthenticationError):
            cache.by_name("nobody")
        await store.update_key("submitter", disabled=True)
        await cache.reload()
        with pytest.raises(AuthenticationError, match="disabled"):
            cache.by_name("submitter")
    finally:
        await cache.stop()
