"""An in-process gateway with the response cache on, for the cache and coalescing tests."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from relaygate.app import RelaygateApp
from relaygate.services import Services, build_services
from relaygate.settings import load_settings

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
CONFIG = """
limits:
  overload:
    enabled: false
cache:
  enabled: true
models:
  - name: gpt
    aliases: [gpt-alias]
    deployments:
      - provider: mock
        name: gpt-mock
        mock: {dialect: openai, first_token_ms: 30, stream_interval_ms: 5}
  - name: claude
    deployments:
      - provider: mock
        name: claude-mock
        mock: {dialect: anthropic, first_token_ms: 30, stream_interval_ms: 5}
"""


@dataclass
class Gateway:
    client: httpx.AsyncClient
    services: Services
    app: RelaygateApp
    api_key: str
    admin_token: str

    def openai_headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key or self.api_key}", **extra}

    def anthropic_headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"x-api-key": key or self.api_key, "anthropic-version": "2023-06-01", **extra}

    async def openai(self, body: Any, key: str | None = None) -> httpx.Response:
        return await self.client.post(CHAT, json=body, headers=self.openai_headers(key))

    async def anthropic(self, body: Any, key: str | None = None) -> httpx.Response:
        return await self.client.post(MESSAGES, json=body, headers=self.anthropic_headers(key))

    def upstream_calls(self, model: str) -> int:
        """Model requests the in-process mock behind ``model`` received."""
        route = self.services.catalog.get(model)
        assert route is not None
        app: Any = route.deployments[0].transport._app  # type: ignore[attr-defined]
        return int(app._stats.requests)

    async def ledger_rows(self, request_id: str) -> list[Any]:
        ledger = self.services.accounting.ledger
        assert ledger is not None
        await ledger.flush()
        return await self.services.accounting.store.rows_for_request(request_id)


async def start_gateway(tmp_path: Path, config: str = CONFIG) -> Gateway:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "relaygate.yaml"
    path.write_text(config)
    overrides = {"home": str(tmp_path), "database_url": f"sqlite:///{tmp_path / 'rg.db'}"}
    settings = load_settings(path, env={}, overrides=overrides)
    services = await build_services(settings)
    app = RelaygateApp(settings)
    app.services = services
    assert services.bootstrap is not None
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=30
    )
    return Gateway(
        client, services, app, services.bootstrap.api_key, services.bootstrap.admin_token
    )


def openai_chat(text: str = "hello", **kw: Any) -> dict[str, Any]:
    return {"model": "gpt", "temperature": 0, "messages": [{"role": "user", "content": text}], **kw}


def anthropic_chat(text: str = "hello", model: str = "claude", **kw: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 64,
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
        **kw,
    }


def sse_data(body: bytes) -> list[Any]:
    """The JSON payloads of an SSE body (``[DONE]`` left out)."""
    found = []
    for line in body.split(b"\n"):
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            found.append(orjson.loads(line[6:]))
    return found


def openai_stream_text(body: bytes) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in sse_data(body)
        for choice in chunk.get("choices", [])
    )


def anthropic_stream_text(body: bytes) -> str:
    return "".join(
        event["delta"].get("text", "")
        for event in sse_data(body)
        if event.get("type") == "content_block_delta"
    )


@dataclass
class RawCall:
    """One ASGI call driven by hand, so a test can make its caller go away mid-stream."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    leave: asyncio.Event = field(default_factory=asyncio.Event)


async def raw_call(
    app: RelaygateApp, path: str, headers: dict[str, str], body: Any, call: RawCall
) -> None:
    payload = orjson.dumps(body)
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await call.leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            call.status = message["status"]
            call.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            call.body.extend(message.get("body", b""))
            call.started.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("gw", 80),
        "scheme": "http",
    }
    await app(scope, receive, send)
