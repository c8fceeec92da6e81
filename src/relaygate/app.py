"""create_app(settings) -> the ASGI app. The lifespan builds Services and drains them at shutdown.

The proxy routes are dispatched from a plain dict, without a framework's per-request layers: the
gateway's own cost per request is the product (shared/reference/python-relay-floor.md).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable

from relaygate.admin import handle_admin, is_admin_path
from relaygate.core.errors import GatewayError, NotFoundError
from relaygate.dialects.base import Dialect
from relaygate.observability.logging import configure_logging
from relaygate.openapi import handle_openapi
from relaygate.relay.context import RequestContext
from relaygate.relay.handler import handle_chat, handle_count_tokens, new_request_id, send_error
from relaygate.services import Services, build_services
from relaygate.settings import Settings, config_path_from_env, load_settings
from relaygate.web.request import Receive, Request, Scope, Send
from relaygate.web.responses import send_body
from relaygate.web.system_routes import (
    handle_healthz,
    handle_metrics,
    handle_model,
    handle_models,
    handle_probe,
    handle_readyz,
)

logger = logging.getLogger("relaygate")
Handler = Callable[[Services, Request, Send], Awaitable[None]]
OnStarted = Callable[[Services], None]


async def _openai_chat(services: Services, request: Request, send: Send) -> None:
    await handle_chat(services, request, send, services.openai)


async def _anthropic_messages(services: Services, request: Request, send: Send) -> None:
    await handle_chat(services, request, send, services.anthropic)


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/chat/completions"): _openai_chat,
    ("POST", "/chat/completions"): _openai_chat,
    ("POST", "/v1/messages"): _anthropic_messages,
    ("POST", "/v1/messages/count_tokens"): handle_count_tokens,
    ("GET", "/v1/models"): handle_models,
    ("GET", "/models"): handle_models,
    ("GET", "/healthz"): handle_healthz,
    ("GET", "/readyz"): handle_readyz,
    ("GET", "/metrics"): handle_metrics,
    ("GET", "/openapi.json"): handle_openapi,
    ("HEAD", "/"): handle_probe,
    ("HEAD", "/api/hello"): handle_probe,
    ("GET", "/"): handle_probe,
}
MODEL_PREFIXES = ("/v1/models/", "/models/")


class RelaygateApp:
    """The ASGI callable. ``services`` exists between lifespan start-up and shutdown."""

    def __init__(self, settings: Settings, on_started: OnStarted | None = None) -> None:
        self.settings = settings
        self.services: Services | None = None
        self._on_started = on_started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self.services
        request = Request(scope, receive)
        if services is None:
            await send_body(send, 503, b"starting", [(b"content-type", b"text/plain")])
            return
        handler = ROUTES.get((request.method, request.path))
        if handler is not None:
            await handler(services, request, send)
        elif request.method == "GET" and request.path.startswith(MODEL_PREFIXES):
            await handle_model(services, request, send)
        elif is_admin_path(request.path):
            await handle_admin(services, request, send)
        else:
            await _not_found(services, request, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.services = await build_services(self.settings)
                except Exception as exc:
                    logger.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                _settle_heap()
                if self._on_started is not None:
                    self._on_started(self.services)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.services is not None:
                    await self.services.close()
                    self.services = None
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings, on_started: OnStarted | None = None) -> RelaygateApp:
    """Build the app; nothing is opened until the ASGI lifespan starts it."""
    return RelaygateApp(settings, on_started)


def create_app_from_env() -> RelaygateApp:
    """The app of one worker process of ``relaygate serve --workers N`` (a uvicorn factory).

    ``serve`` resolves its options once and hands them to the workers as ``RELAYGATE_*``
    variables (``RELAYGATE_CONFIG`` for the file), read here by ``load_settings``.
    """
    settings = load_settings(config_path_from_env())
    configure_logging(settings.log_level)
    return create_app(settings)


async def _not_found(services: Services, request: Request, send: Send) -> None:
    dialect: Dialect = services.anthropic if _speaks_anthropic(request) else services.openai
    ctx = RequestContext(new_request_id(request), "unknown", dialect.name)
    err: GatewayError = NotFoundError(f"No route for {request.method} {request.path}")
    await send_error(ctx, send, dialect, err)


def _speaks_anthropic(request: Request) -> bool:
    return "anthropic-version" in request.headers or request.path.startswith("/v1/messages")


def _settle_heap() -> None:
    """Move everything built at start-up out of the collector's reach.

    Under load, full collections that walk the long-lived start-up objects (modules, settings,
    catalog, caches) took ~26 ms each, every ~1.5 s: enough on their own to break the p99 target.
    Freezing them once leaves the collector only the per-request garbage.
    """
    gc.collect()
    gc.freeze()
