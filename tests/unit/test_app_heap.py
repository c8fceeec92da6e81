"""The start-up heap settling: start-up objects frozen, the young collection made rare."""

from __future__ import annotations

import gc
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest

import relaygate.app as app_module
from relaygate.app import YOUNG_COLLECTION_THRESHOLD, create_app
from relaygate.settings import Settings

Message = MutableMapping[str, Any]


class StubServices:
    closed = False

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def default_collector() -> Iterator[None]:
    """CPython's default thresholds and nothing frozen, restored afterwards."""
    saved = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)


async def test_start_up_freezes_the_heap_and_raises_the_young_threshold(
    default_collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = StubServices()

    async def build(settings: Settings) -> StubServices:
        return services

    monkeypatch.setattr(app_module, "build_services", build)
    app = create_app(
        Settings.model_validate({"models": [{"name": "m", "deployments": [{"provider": "mock"}]}]})
    )
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Message] = []

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        sent.append(dict(message))
        if message["type"] == "lifespan.startup.complete":
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, 10, 10)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert services.closed


def test_a_higher_threshold_set_by_the_operator_is_kept(default_collector: None) -> None:
    gc.set_threshold(100_000, 5, 5)
    app_module._settle_heap()
    assert gc.get_threshold() == (100_000, 5, 5)
