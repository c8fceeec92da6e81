"""Stored records: frozen dataclasses passed between the store, the key cache, CLI and admin API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

MAX_NAME_LENGTH = 128


@dataclass(frozen=True, slots=True)
class KeySpec:
    """Everything needed to create a gateway key. The store sees only the hash, never the key.

    ``allowed_models`` empty means every model; ``priority`` is the admission class (higher is
    admitted first); ``expires_at`` must be timezone-aware.
    """

    name: str
    key_hash: str
    key_prefix: str
    owner: str | None = None
    team: str | None = None
    allowed_models: tuple[str, ...] = ()
    priority: int = 0
    rps: float | None = None
    burst: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    monthly_budget_usd: float | None = None
    balance_usd: float | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        check_expiry(self.expires_at)
        if len(self.key_hash) != 64:
            raise ValueError("key_hash: expected a sha256 hex digest")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One gateway key as stored. ``disabled`` is set when the key is revoked or switched off."""

    id: str
    name: str
    key_hash: str
    key_prefix: str
    owner: str | None
    team: str | None
    allowed_models: tuple[str, ...]
    priority: int
    rps: float | None
    burst: int | None
    rpm: int | None
    tpm: int | None
    max_concurrent: int | None
    monthly_budget_usd: float | None
    balance_usd: float | None
    expires_at: datetime | None
    disabled: bool
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


# Fields update_key may change; identity (id, name, hash, prefix) and history (created/revoked)
# are fixed. A revoked key stays revoked: ``disabled`` cannot re-enable it.
UPDATABLE_FIELDS = frozenset(
    {
        "owner",
        "team",
        "allowed_models",
        "priority",
        "rps",
        "burst",
        "rpm",
        "tpm",
        "max_concurrent",
        "monthly_budget_usd",
        "balance_usd",
        "expires_at",
        "disabled",
    }
)


def check_name(name: str) -> None:
    """Reject names that cannot be typed on a command line or shown in a table."""
    if not name or name != name.strip():
        raise ValueError("name: must be non-empty without leading or trailing spaces")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name: at most {MAX_NAME_LENGTH} characters")
    if not name.isprintable():
        raise ValueError("name: must not contain control characters")


def check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at.utcoffset() is None:
        raise ValueError("expires_at: must be timezone-aware (UTC)")


def apply_changes(record: KeyRecord, changes: Mapping[str, object]) -> KeyRecord:
    """``record`` with ``changes`` applied, after checking the field names and the rules."""
    unknown = sorted(set(changes) - UPDATABLE_FIELDS)
    if unknown:
        raise ValueError(f"cannot update field(s): {', '.join(unknown)}")
    values = dict(changes)
    if "allowed_models" in values:
        models = values["allowed_models"]
        if isinstance(models, str) or not isinstance(models, list | tuple):
            raise ValueError("allowed_models: expected a list of model names")
        values["allowed_models"] = tuple(str(m) for m in models)
    if record.revoked and values.get("disabled") is False:
        raise ValueError(f"key '{record.name}' was revoked and cannot be re-enabled")
    updated = replace(record, **values)  # type: ignore[arg-type]
    check_expiry(updated.expires_at)
    return updated
