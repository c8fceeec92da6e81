"""The in-process key cache: every request is authenticated from memory, never from the database."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from relaygate.auth.snapshot import load_snapshot, save_snapshot
from relaygate.core.background import BackgroundTask
from relaygate.core.errors import AuthenticationError, GatewayError, PermissionDeniedError, clip
from relaygate.store.errors import StoreError
from relaygate.store.protocols import KeyStore
from relaygate.store.records import KeyRecord

logger = logging.getLogger("relaygate.auth")

MISSING_KEY = "Missing API key: send it as x-api-key or Authorization: Bearer"
INVALID_KEY = "Invalid API key"
REVOKED_KEY = "This API key has been revoked"
DISABLED_KEY = "This API key is disabled"
MISSING_ADMIN_TOKEN = "Missing admin token: send it as Authorization: Bearer"  # noqa: S105 (a message)
INVALID_ADMIN_TOKEN = "Invalid admin token"  # noqa: S105 (a message)
KEYS_UNAVAILABLE = (
    "The gateway cannot check keys yet: its database is unreachable and it has no key snapshot "
    "from an earlier run. Retry shortly."
)

_Entry = tuple[KeyRecord, float]


class KeysUnavailableError(GatewayError):
    """No key set is loaded yet (database down at start, no snapshot): a 503, not a 401."""

    status = 503
    kind = "unavailable"

    def __init__(self) -> None:
        super().__init__(KEYS_UNAVAILABLE, retry_after=5.0)


class KeyCache:
    """A snapshot of every key, by hash, refreshed in a background task it owns.

    The refresher polls the store's ``keys_version()`` every ``refresh_seconds`` and reloads only
    when it changed, so a revocation reaches every gateway process within one interval while an
    idle database sees one tiny query per interval. If the store is down, the last snapshot stays.

    With ``snapshot_path`` every load from the store is also saved to disk (hashes only), and
    ``load_snapshot`` lets a gateway that starts while the database is down serve those keys.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        refresh_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
        snapshot_path: Path | None = None,
    ) -> None:
        if refresh_seconds <= 0:
            raise ValueError("refresh_seconds must be positive")
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._by_hash: dict[str, _Entry] = {}
        self._admin_hashes: tuple[str, ...] = ()
        self._version: int | None = None
        self._snapshot_path = snapshot_path
        self._snapshot_saved_at: datetime | None = None  # set while serving a loaded snapshot
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop = BackgroundTask("relaygate-key-cache", self._run)

    @property
    def version(self) -> int | None:
        """The store version of the current snapshot; None before the first load."""
        return self._version

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def loaded(self) -> bool:
        """Whether a key set is loaded (from the store or from the snapshot file)."""
        return self._loaded

    def describe(self) -> str:
        """Where the keys come from: "database", "snapshot (N keys, saved at ...)" or "none"."""
        if not self._loaded:
            return "none"
        saved_at = self._snapshot_saved_at
        if saved_at is None:
            return "database"
        moment = saved_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"snapshot ({len(self._by_hash)} keys, saved at {moment})"

    def load_snapshot(self) -> bool:
        """Serve the keys saved by an earlier load (the store is unreachable); False if none."""
        if self._snapshot_path is None:
            return False
        snapshot = load_snapshot(self._snapshot_path)
        if snapshot is None:
            return False
        self._by_hash = _index(snapshot.records)
        self._admin_hashes = snapshot.admin_hashes
        self._snapshot_saved_at = snapshot.saved_at
        self._version = None  # the first successful refresh reloads from the store
        self._loaded = True
        return True

    async def start(self) -> None:
        """Load the first snapshot (store errors propagate) and start the refresher."""
        await self.reload()
        self._loop.start()

    async def stop(self) -> None:
        """Stop the refresher and wait for it; safe to call twice."""
        await self._loop.cancel()

    def invalidate(self) -> None:
        """Mark the snapshot stale and wake the refresher to reload it now."""
        self._version = None
        self._wake.set()

    async def refresh(self) -> bool:
        """Reload when the store's version moved (or after ``invalidate``); True if reloaded."""
        if await self._store.keys_version() == self._version:
            return False
        await self.reload()
        return True

    async def reload(self) -> None:
        """Load a fresh snapshot unconditionally."""
        async with self._load_lock:
            # The version is read before the rows: a change racing with the load leaves the
            # snapshot newer than its version, and the next poll simply loads again.
            version = await self._store.keys_version()
            records = await self._store.list_keys()
            admin_hashes = await self._store.list_admin_token_hashes()
            self._by_hash = _index(records)
            self._admin_hashes = tuple(admin_hashes)
            self._version = version
            self._snapshot_saved_at = None
            self._loaded = True
            if self._snapshot_path is not None:
                await self._save_snapshot(self._snapshot_path, records, admin_hashes)

    async def _save_snapshot(
        self, path: Path, records: Sequence[KeyRecord], admin_hashes: Sequence[str]
    ) -> None:
        try:
            await asyncio.to_thread(save_snapshot, path, records, admin_hashes)
        except OSError as exc:
            logger.warning("cannot save the key snapshot to %s: %s", path, exc)

    def records(self) -> list[KeyRecord]:
        """Every loaded key (revoked and disabled ones included)."""
        return [entry[0] for entry in self._by_hash.values()]

    def authenticate(self, raw_key: str | None) -> KeyRecord:
        """The key's record, or AuthenticationError saying what is wrong with the key."""
        if not raw_key:
            raise AuthenticationError(MISSING_KEY)
        presented = hashlib.sha256(raw_key.encode("utf-8")).hexdigest()
        entry = self._by_hash.get(presented)
        # The lookup is keyed by the hash of what the caller sent, so its timing can only tell
        # about that hash, never about a stored key; the final check is still constant-time.
        if entry is None or not hmac.compare_digest(entry[0].key_hash, presented):
            if not self._loaded:
                raise KeysUnavailableError
            raise AuthenticationError(INVALID_KEY)
        record, expires_at = entry  # ``_usable``, inlined: every request of a known key
        if record.disabled or self._clock() >= expires_at:
            return self._usable(entry)  # raises
        return record

    def by_name(self, name: str) -> KeyRecord:
        """The named key, for work it submitted earlier (a pipeline job): refused like
        ``authenticate`` once the key is disabled, revoked, expired or gone."""
        for entry in self._by_hash.values():
            if entry[0].name == name:
                return self._usable(entry)
        if not self._loaded:
            raise KeysUnavailableError
        raise AuthenticationError(INVALID_KEY)

    def _usable(self, entry: _Entry) -> KeyRecord:
        record, expires_at = entry
        if record.disabled:
            raise AuthenticationError(REVOKED_KEY if record.revoked_at else DISABLED_KEY)
        if self._clock() >= expires_at:
            raise AuthenticationError(_expired_message(record))
        return record

    def authenticate_admin(self, raw_token: str | None) -> None:
        """Accept a known admin token or raise AuthenticationError."""
        if not raw_token:
            raise AuthenticationError(MISSING_ADMIN_TOKEN)
        presented = hashlib.sha256(raw_token.encode("utf-8")).hexdigest()
        matched = False
        for stored in self._admin_hashes:
            matched |= hmac.compare_digest(stored, presented)
        if not matched:
            if not self._loaded:
                raise KeysUnavailableError
            raise AuthenticationError(INVALID_ADMIN_TOKEN)

    def check_model(self, record: KeyRecord, model: str) -> None:
        """Raise PermissionDeniedError (403) unless ``record`` may use ``model``."""
        check_model(record, model)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
            except StoreError as exc:
                logger.warning("key cache refresh failed; keeping the last snapshot: %s", exc)
            except Exception:
                # The loop is this task's top handler: revocations must keep arriving.
                logger.exception("key cache refresh failed unexpectedly; keeping the last snapshot")


def check_model(record: KeyRecord, model: str) -> None:
    """Raise PermissionDeniedError (403) unless ``record`` may use ``model`` (empty list = all)."""
    allowed = record.allowed_models
    if allowed and model not in allowed:
        raise PermissionDeniedError(
            f"This key may not use model '{clip(model)}'. Allowed: {', '.join(allowed)}",
            param="model",
        )


def _index(records: Sequence[KeyRecord]) -> dict[str, _Entry]:
    return {
        r.key_hash: (r, r.expires_at.timestamp() if r.expires_at else math.inf) for r in records
    }


def _expired_message(record: KeyRecord) -> str:
    expires_at = record.expires_at or datetime.now(UTC)
    moment = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"This API key expired on {moment}"
