"""An in-process gateway with extraction pipelines over the mock, for the pipeline tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from relaygate.services import Services, build_services
from relaygate.settings import load_settings

T = TypeVar("T")

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order_id", "items"],
    "properties": {
        "order_id": {"type": "string"},
        "items": {
            "type": "array",
            "items": {"type": "object", "required": ["sku", "qty"],
                      "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}},
        },
    },
}  # fmt: skip
ORDER = {"order_id": "A-17", "items": [{"sku": "apple", "qty": 2}]}


def pipeline_config(tmp_path: Path, database_url: str | None = None, **pipeline: Any) -> Path:
    """A config file: the mock model priced, one ``orders`` pipeline (fields overridable)."""
    config = {
        "home": str(tmp_path),
        "database_url": database_url or f"sqlite:///{tmp_path / 'relaygate.db'}",
        "key_cache_refresh_seconds": 0.05,
        "models": [{"name": "mock-x", "deployments": [{"provider": "mock"}]}],
        "accounting": {
            "pricing": {"mock-x": {"input": 1.0, "output": 2.0}},
            "ledger": {"flush_interval_seconds": 0.05},
        },
        "pipelines": [
            {
                "name": "orders",
                "model": "mock-x",
                "prompt": "Extract the order as JSON. Message: {{ content }}",
                "schema": ORDER_SCHEMA,
                "max_attempts": 3,
                "concurrency": 4,
                "retry_base_seconds": 0.02,
                **pipeline,
            }
        ],
    }
    path = tmp_path / "relaygate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@asynccontextmanager
async def gateway(
    config: Path, *, workers: bool = True, env: Mapping[str, str] | None = None
) -> AsyncIterator[Services]:
    settings = load_settings(config, env=env or {})
    services = await build_services(settings, pipeline_workers=workers)
    try:
        yield services
    finally:
        await services.close()


def content(mode: str, value: Any = None) -> str:
    return f"Order from Ann. mock:extract {mode} {json.dumps(ORDER if value is None else value)}"


async def poll(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Await ``check`` until it returns something, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (value := await check()) is None:
        assert time.monotonic() < deadline, f"not reached in time: {check}"
        await asyncio.sleep(0.02)
    return value
