"""count_tokens in process: an unexpected failure is still an Anthropic error, not plain text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaygate.app import RelaygateApp
from relaygate.services import Services, build_services
from relaygate.settings import load_settings


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    overrides = {"home": str(tmp_path), "database_url": f"sqlite:///{tmp_path / 'db'}"}
    settings = load_settings(None, env={}, overrides=overrides)
    app = RelaygateApp(settings)
    app.services = services = await build_services(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client, services
    await services.close()


async def test_an_unexpected_failure_is_an_anthropic_500(
    gateway: tuple[httpx.AsyncClient, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, services = gateway
    route = services.catalog.get("mock-claude")
    assert route is not None
    provider = route.deployments[0].provider

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(type(provider), "build_count_tokens", broken)
    assert services.bootstrap is not None
    response = await client.post(
        "/v1/messages/count_tokens",
        headers={"x-api-key": services.bootstrap.api_key, "anthropic-version": "2023-06-01"},
        json={"model": "mock-claude", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "api_error"
    assert "request id" in body["error"]["message"] or body.get("request_id")
    assert "a bug" not in response.text
