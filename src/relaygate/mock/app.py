"""``create_mock_app``: the simulated upstream as a raw ASGI app (no framework, nothing at import).

Routes: ``POST /v1/chat/completions`` (OpenAI wire), ``POST /v1/messages`` and
``POST /v1/messages/count_tokens`` (Anthropic wire), ``GET /v1/models``, ``GET /healthz``, and the
test controls ``GET /mock/stats``, ``POST /mock/stats/reset``, ``GET|PUT /mock/faults``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Final

import orjson
from pydantic import ValidationError

from relaygate.core.errors import GatewayError, InvalidRequestError, NotFoundError
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.mock.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    read_body,
    request_headers,
    send_whole,
    serve_lifespan,
)
from relaygate.mock.chat import MockChat, WireDialect
from relaygate.mock.faults import FaultPlan
from relaygate.mock.stats import MockStats
from relaygate.settings.model import MockFaultSettings, MockSettings

MOCK_MODELS: Final = ("mock-gpt", "mock-claude", "mock-fast")
CHAT_PATHS: Final = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}
COUNT_TOKENS_PATH: Final = "/v1/messages/count_tokens"


def create_mock_app(settings: MockSettings, seed: int | None = None) -> ASGIApp:
    """A fresh mock upstream; ``seed`` makes latency jitter and fault draws repeatable."""
    return MockApp(settings, seed)


class MockApp:
    """The mock's ASGI entry point: routing and test controls; ``MockChat`` answers."""

    def __init__(self, settings: MockSettings, seed: int | None = None) -> None:
        rng = random.Random(seed)
        self._stats = MockStats()
        self._faults = FaultPlan(settings.fault, rng)
        self._chat = MockChat(settings, rng, self._faults, self._stats)
        self._openai = OpenAIDialect()
        self._anthropic = AnthropicDialect()
        self._dialects: dict[str, WireDialect] = {
            "openai": self._openai,
            "anthropic": self._anthropic,
        }
        self._models = _models_body()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await serve_lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        wire = CHAT_PATHS.get(path)
        if wire is not None or path == COUNT_TOKENS_PATH:
            if method != "POST":
                await _error(send, GatewayError("method not allowed", status=405))
                return
            await self._model_request(scope, receive, send, wire)
        elif method == "GET" and path == "/v1/models":
            await send_whole(send, 200, self._models)
        elif method == "GET" and path == "/healthz":
            await send_whole(send, 200, b'{"status":"ok"}')
        elif path.startswith("/mock/"):
            await self._control(method, path, receive, send)
        else:
            await _error(send, NotFoundError(f"mock: no route for {method} {path}"))

    async def _model_request(
        self, scope: Scope, receive: Receive, send: Send, wire: str | None
    ) -> None:
        dialect = self._dialects[wire or "anthropic"]
        self._stats.enter(scope["path"])
        try:
            body = await read_body(receive)
            if body is None:
                return
            ex = self._chat.exchange(dialect, receive, send)
            refusal = self._chat.over_limit()
            headers = request_headers(scope)
            if refusal is not None:
                await ex.error(refusal)
            elif wire is None:
                await self._chat.count_tokens(ex, self._anthropic, body, headers)
            else:
                await self._chat.chat(ex, body, headers)
        finally:
            self._stats.leave()

    async def _control(self, method: str, path: str, receive: Receive, send: Send) -> None:
        if method == "GET" and path == "/mock/stats":
            await send_whole(send, 200, orjson.dumps(self._stats.snapshot()))
        elif method == "POST" and path == "/mock/stats/reset":
            self._stats.reset()
            await send_whole(send, 200, orjson.dumps(self._stats.snapshot()))
        elif method == "GET" and path == "/mock/faults":
            await send_whole(send, 200, self._faults.settings.model_dump_json().encode())
        elif method == "PUT" and path == "/mock/faults":
            await self._put_faults(receive, send)
        else:
            await _error(send, NotFoundError(f"mock: no route for {method} {path}"))

    async def _put_faults(self, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if body is None:
            return
        try:
            settings = MockFaultSettings.model_validate_json(body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            await _error(send, InvalidRequestError(f"mock faults: {problems}", param="body"))
            return
        self._faults.replace(settings)
        await send_whole(send, 200, settings.model_dump_json().encode())


async def _error(send: Send, err: GatewayError) -> None:
    """Errors outside the model routes, in a neutral ``{"error": {...}}`` shape."""
    body = orjson.dumps({"error": {"type": err.kind, "message": err.message}})
    await send_whole(send, err.status, body)


def _models_body() -> bytes:
    """One listing both SDKs accept: OpenAI's ``object``/``owned_by`` and Anthropic's fields."""
    data = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "relaygate-mock",
            "type": "model",
            "display_name": name,
            "created_at": "2024-01-01T00:00:00Z",
        }
        for name in MOCK_MODELS
    ]
    listing: Mapping[str, object] = {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": MOCK_MODELS[0],
        "last_id": MOCK_MODELS[-1],
    }
    return orjson.dumps(listing)
