"""An expired dashboard session is refused (in process, with the signer's clock moved on)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from relaygate.app import RelaygateApp
from relaygate.dashboard import routes
from relaygate.dashboard.session import SessionSigner
from relaygate.services import build_services
from relaygate.settings import load_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    overrides = {"home": str(tmp_path), "database_url": f"sqlite:///{tmp_path / 'rg.db'}"}
    settings = load_settings(None, env={}, overrides=overrides)
    services = await build_services(settings)
    app = RelaygateApp(settings)
    app.services = services
    assert services.bootstrap is not None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http, services.bootstrap.admin_token
    await services.close()


async def test_a_session_ends_when_its_cookie_expires(
    client: tuple[httpx.AsyncClient, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, token = client
    clock = Clock()
    signer = SessionSigner(lifetime_seconds=600, clock=clock)
    monkeypatch.setattr(routes, "signer_for", lambda services: signer)
    login = await http.post("/dashboard/login", data={"token": token})
    assert login.status_code == 303
    assert "Max-Age=600" in login.headers["set-cookie"]
    assert (await http.get("/dashboard/keys")).status_code == 200
    clock.now += 599
    assert (await http.get("/dashboard/keys")).status_code == 200
    clock.now += 1
    expired = await http.get("/dashboard/keys")
    assert expired.status_code == 303
    assert expired.headers["location"] == "/dashboard/login"
