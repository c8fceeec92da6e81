"""The route table: which handler answers each method and path.

The proxy routes are dispatched from a plain dict, without a framework's per-request layers: the
gateway's own cost per request is the product (shared/reference/python-relay-floor.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from relaygate.admin import handle_admin, is_admin_path
from relaygate.core.context import RequestContext
from relaygate.core.errors import GatewayError, NotFoundError, clip
from relaygate.dashboard import handle_dashboard, is_dashboard_path
from relaygate.dialects.base import Dialect
from relaygate.edge.handler import handle_chat, handle_count_tokens, new_request_id, send_error
from relaygate.edge.openapi import handle_openapi
from relaygate.edge.pipeline_routes import handle_pipeline_api, is_pipeline_path
from relaygate.edge.session_routes import SESSION_PREFIX, handle_session
from relaygate.edge.system_routes import (
    handle_healthz,
    handle_metrics,
    handle_model,
    handle_models,
    handle_probe,
    handle_readyz,
)
from relaygate.services import Services
from relaygate.web.request import Request, Send

Handler = Callable[[Services, Request, Send], Awaitable[None]]


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
# GET and DELETE /v1/sessions/{id} (edge/session_routes.py).
SESSION_METHODS = frozenset({"GET", "DELETE"})


async def dispatch(services: Services, request: Request, send: Send) -> None:
    """Answer one HTTP request: a proxy or system route, a model entry, the admin API, the
    pipeline API, the dashboard, or 404."""
    handler = ROUTES.get((request.method, request.path))
    if handler is not None:
        await handler(services, request, send)
    elif request.method == "GET" and request.path.startswith(MODEL_PREFIXES):
        await handle_model(services, request, send)
    elif request.method in SESSION_METHODS and request.path.startswith(SESSION_PREFIX):
        dialect = services.anthropic if _speaks_anthropic(request) else services.openai
        await handle_session(services, request, send, dialect)
    elif is_admin_path(request.path):
        await handle_admin(services, request, send)
    elif is_pipeline_path(request.path):
        await handle_pipeline_api(services, request, send)
    elif is_dashboard_path(request.path):
        await handle_dashboard(services, request, send)
    else:
        await _not_found(services, request, send)


async def _not_found(services: Services, request: Request, send: Send) -> None:
    dialect: Dialect = services.anthropic if _speaks_anthropic(request) else services.openai
    ctx = RequestContext(new_request_id(request), "unknown", dialect.name)
    err: GatewayError = NotFoundError(f"No route for {clip(request.method)} {clip(request.path)}")
    await send_error(ctx, send, dialect, err, services.redactor)


def _speaks_anthropic(request: Request) -> bool:
    return "anthropic-version" in request.headers or request.path.startswith("/v1/messages")
