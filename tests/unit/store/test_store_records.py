from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from relaygate.store import KeyRecord, KeySpec
from relaygate.store.migrations import Migration, check_sequence, pending
from relaygate.store.postgres.migrations import MIGRATIONS as POSTGRES_MIGRATIONS
from relaygate.store.records import apply_changes
from relaygate.store.sqlite.migrations import MIGRATIONS as SQLITE_MIGRATIONS

HASH = "a" * 64
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def record(**fields: object) -> KeyRecord:
    base = KeyRecord(
        id="id",
        name="k",
        key_hash=HASH,
        key_prefix="rg-abcde",
        owner=None,
        team=None,
        allowed_models=(),
        priority=0,
        rps=None,
        burst=None,
        rpm=None,
        tpm=None,
        max_concurrent=None,
        monthly_budget_usd=None,
        balance_usd=None,
        expires_at=None,
        disabled=False,
        created_at=NOW,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "non-empty"),
        (" padded", "leading or trailing"),
        ("x" * 129, "at most 128"),
        ("tab\there", "control characters"),
    ],
)
def test_key_names_are_checked(name: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        KeySpec(name=name, key_hash=HASH, key_prefix="rg-")


def test_spec_needs_a_sha256_hash_and_an_aware_expiry() -> None:
    with pytest.raises(ValueError, match="sha256"):
        KeySpec(name="k", key_hash="rg-rawkey", key_prefix="rg-")
    with pytest.raises(ValueError, match="timezone-aware"):
        KeySpec(name="k", key_hash=HASH, key_prefix="rg-", expires_at=datetime(2030, 1, 1))
    eight = timezone(timedelta(hours=8))
    KeySpec(
        name="k", key_hash=HASH, key_prefix="rg-", expires_at=datetime(2030, 1, 1, tzinfo=eight)
    )


def test_expiry_and_revocation_helpers() -> None:
    assert not record().is_expired(NOW)
    assert record(expires_at=NOW).is_expired(NOW)
    assert not record(expires_at=NOW + timedelta(seconds=1)).is_expired(NOW)
    assert record(revoked_at=NOW).revoked
    assert not record().revoked


def test_apply_changes() -> None:
    changed = apply_changes(record(), {"allowed_models": ["a", "b"], "rpm": 10})
    assert changed.allowed_models == ("a", "b")
    assert changed.rpm == 10
    with pytest.raises(ValueError, match=r"cannot update field.*: id, name"):
        apply_changes(record(), {"name": "x", "id": "y"})
    with pytest.raises(ValueError, match="allowed_models: expected a list"):
        apply_changes(record(), {"allowed_models": "a,b"})
    with pytest.raises(ValueError, match="cannot be re-enabled"):
        apply_changes(record(disabled=True, revoked_at=NOW), {"disabled": False})


def test_migration_lists_are_numbered_without_gaps() -> None:
    check_sequence(SQLITE_MIGRATIONS)
    check_sequence(POSTGRES_MIGRATIONS)
    assert [m.version for m in SQLITE_MIGRATIONS] == [m.version for m in POSTGRES_MIGRATIONS]
    broken = [Migration(1, "a", ()), Migration(3, "c", ())]
    with pytest.raises(ValueError, match="migration 'c' has version 3, expected 2"):
        check_sequence(broken)
    assert pending(broken, {1}) == [broken[1]]


def test_only_a_reserved_version_may_be_skipped() -> None:
    # 5 is held for a migration on a parallel branch; jobs took 6 (issue 10).
    held = [Migration(v, f"m{v}", ()) for v in (1, 2, 3, 4, 6)]
    check_sequence(held)
    check_sequence([*held[:4], Migration(5, "m5", ()), held[4]])
    with pytest.raises(ValueError, match="migration 'm7' has version 7, expected 6"):
        check_sequence([*held[:4], Migration(7, "m7", ())])
    assert pending([*held[:4], Migration(5, "m5", ()), held[4]], {1, 2, 3, 4, 6})[0].version == 5
