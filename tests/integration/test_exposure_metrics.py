"""Caller-chosen values never become metric labels, long ones are never echoed or logged in full,
and ``/metrics`` can require a token (issue 8, item 3). In process, over the real ASGI app."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relaygate.app import RelaygateApp
from relaygate.observability.logging import JsonFormatter
from relaygate.services import Services, build_services
from relaygate.settings import load_settings

# No shedding on event-loop lag: on a loaded machine it would refuse some of the junk requests
# (a bounded ``model="-"`` series) and blur what the cardinality test counts.
CONFIG = """
limits:
  overload:
    enabled: false
models:
  - name: served
    aliases: [served-alias]
    deployments:
      - provider: mock
        name: served-dep
"""


@dataclass
class Gateway:
    client: httpx.AsyncClient
    services: Services
    api_key: str
    admin_token: str

    def chat(self, model: str, **kw: Any) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}


async def _gateway(tmp_path: Path, extra: str = "", env: dict[str, str] | None = None) -> Gateway:
    config = tmp_path / "relaygate.yaml"
    config.write_text(CONFIG + extra)
    overrides = {"home": str(tmp_path), "database_url": f"sqlite:///{tmp_path / 'rg.db'}"}
    settings = load_settings(config, env=env or {}, overrides=overrides)
    services = await build_services(settings)
    app = RelaygateApp(settings)
    app.services = services
    assert services.bootstrap is not None
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return Gateway(client, services, services.bootstrap.api_key, services.bootstrap.admin_token)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await _gateway(tmp_path)
    yield gw
    await gw.client.aclose()
    await gw.services.close()


def label_values(text: str) -> dict[str, set[str]]:
    """Every label name in a Prometheus exposition -> the values it takes."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, value in sample.labels.items():
                found.setdefault(name, set()).add(value)
    return found


def series_of(exposition: str) -> set[str]:
    """Every sample's name and labels, without its value."""
    return {line.rsplit(" ", 1)[0] for line in exposition.splitlines() if line and line[0] != "#"}


async def test_label_cardinality_is_bounded_whatever_callers_send(gateway: Gateway) -> None:
    auth = {"authorization": f"Bearer {gateway.api_key}"}
    anthropic = {"x-api-key": gateway.api_key, "anthropic-version": "2023-06-01"}
    for _ in range(30):
        junk = "m-" + secrets.token_hex(2000)
        await gateway.client.post("/v1/chat/completions", json=gateway.chat(junk), headers=auth)
        await gateway.client.post(
            "/v1/messages", json=gateway.chat(junk, max_tokens=5), headers=anthropic
        )
        await gateway.client.post(
            "/v1/messages/count_tokens", json=gateway.chat(junk), headers=anthropic
        )
        await gateway.client.get(f"/v1/models/{junk}", headers=auth)
        await gateway.client.get(f"/{junk}", headers=auth)
        await gateway.client.post(
            "/v1/chat/completions", json=gateway.chat(junk), headers={"authorization": "Bearer x"}
        )
    ok = await gateway.client.post(
        "/v1/chat/completions", json=gateway.chat("served-alias"), headers=auth
    )
    assert ok.status_code == 200
    before = series_of((await gateway.client.get("/metrics")).text)
    for _ in range(30):
        junk = "m-" + secrets.token_hex(2000)
        await gateway.client.post("/v1/chat/completions", json=gateway.chat(junk), headers=auth)
    scraped = await gateway.client.get("/metrics")
    assert series_of(scraped.text) == before  # a new junk name adds no series at all
    labels = label_values(scraped.text)
    assert labels["model"] <= {"served", "unknown", "-"}
    assert "served" in labels["model"] and "unknown" in labels["model"]
    assert all(len(value) <= 64 for values in labels.values() for value in values)


async def test_unknown_model_error_does_not_echo_a_huge_name(gateway: Gateway) -> None:
    huge = "x" * 100_000
    auth = {"authorization": f"Bearer {gateway.api_key}"}
    answer = await gateway.client.post(
        "/v1/chat/completions", json=gateway.chat(huge), headers=auth
    )
    assert answer.status_code == 404
    message = answer.json()["error"]["message"]
    assert len(message) < 1_000
    assert "served" in message  # still says what is available
    missing = await gateway.client.get("/" + "p" * 60_000, headers=auth)  # httpx caps URLs
    assert missing.status_code == 404
    assert len(missing.content) < 1_000


@pytest.fixture
def request_log() -> Iterator[list[str]]:
    lines: list[str] = []
    formatter = JsonFormatter()

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    logger = logging.getLogger("relaygate.request")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_request_log_keeps_a_huge_model_name_short(
    gateway: Gateway, request_log: list[str]
) -> None:
    auth = {"authorization": f"Bearer {gateway.api_key}"}
    await gateway.client.post(
        "/v1/chat/completions", json=gateway.chat("y" * 100_000), headers=auth
    )
    assert request_log
    assert all(len(line) < 2_000 for line in request_log)


async def test_metrics_stay_open_by_default(gateway: Gateway) -> None:
    assert (await gateway.client.get("/metrics")).status_code == 200


async def test_metrics_can_require_the_admin_or_the_metrics_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRAPE_TOKEN", "scrape-0123456789")
    extra = "server:\n  metrics_token_required: true\n  metrics_token_env: SCRAPE_TOKEN\n"
    gw = await _gateway(tmp_path, extra, env={"SCRAPE_TOKEN": "scrape-0123456789"})
    try:
        for headers in (
            {},
            {"authorization": "Bearer wrong"},
            {"authorization": f"Bearer {gw.api_key}"},
        ):
            refused = await gw.client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["type"]
        for token in (gw.admin_token, "scrape-0123456789"):
            allowed = await gw.client.get("/metrics", headers={"authorization": f"Bearer {token}"})
            assert allowed.status_code == 200
            assert b"relaygate_requests_in_flight" in allowed.content
    finally:
        await gw.client.aclose()
        await gw.services.close()
