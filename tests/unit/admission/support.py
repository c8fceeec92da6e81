"""Keys, routes and requests for Admitter tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from relaygate.core.types import ChatRequest, Message, TextBlock
from relaygate.limits import BucketAsk, MemoryLimiter
from relaygate.limits.limiter import Admission, BucketSettle, Lease
from relaygate.routing.catalog import Catalog, build_catalog
from relaygate.settings import Settings
from relaygate.store.records import KeyRecord
from relaygate.transport.http import HttpTransport

BASE_KEY = KeyRecord(
    id="key-1",
    name="tester",
    key_hash="0" * 64,
    key_prefix="rg-test",
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
    created_at=datetime(2025, 1, 1, tzinfo=UTC),
)


def key(**changes: Any) -> KeyRecord:
    return replace(BASE_KEY, **changes)


def catalog(*models: dict[str, Any]) -> Catalog:
    return build_catalog(Settings.model_validate({"models": list(models)}), HttpTransport())


def model(name: str, *deployments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    deps = [{"provider": "mock", **d} for d in deployments] or [{"provider": "mock"}]
    return {"name": name, "deployments": deps, **extra}


def request(
    model_name: str = "m", text: str = "hello", max_tokens: int | None = None
) -> ChatRequest:
    messages = ({"role": "user", "content": text},)
    return ChatRequest(
        dialect="openai",
        model=model_name,
        messages=(Message("user", (TextBlock(text),)),),
        max_tokens=max_tokens,
        raw={"model": model_name, "messages": list(messages)},
    )


class WrappedLimiter:
    """Delegates to a limiter while hiding its class (so the Admitter uses its releaser)."""

    def __init__(self, inner: MemoryLimiter) -> None:
        self._inner = inner
        self.backend = "remote"

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission:
        return await self._inner.acquire(asks)

    async def settle(self, settles: Sequence[BucketSettle]) -> None:
        await self._inner.settle(settles)

    async def release(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
        await self._inner.release(lease, settles)

    async def close(self) -> None:
        return None
