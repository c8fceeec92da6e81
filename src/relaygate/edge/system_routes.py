"""Health, readiness, metrics, probes and the model listing (in the caller's dialect)."""

from __future__ import annotations

import time

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from relaygate.auth.keys import extract_api_key
from relaygate.core.context import RequestContext
from relaygate.core.errors import GatewayError, ModelNotFoundError
from relaygate.dialects.base import Dialect
from relaygate.edge.handler import new_request_id, send_error
from relaygate.recovery import readiness
from relaygate.services import Services
from relaygate.web.request import Request, Send
from relaygate.web.responses import send_body, send_json

# A fixed creation time: model entries come from config, which has no dates.
MODEL_CREATED = 1_735_689_600


async def handle_healthz(services: Services, request: Request, send: Send) -> None:
    await send_json(send, 200, b'{"status":"ok"}')


async def handle_readyz(services: Services, request: Request, send: Send) -> None:
    ready, report = readiness(services.keys, services.database)
    body = orjson.dumps({**report, "models": len(services.catalog.model_names)})
    await send_json(send, 200 if ready else 503, body)


async def handle_metrics(services: Services, request: Request, send: Send) -> None:
    try:
        services.metrics_access.check(request.headers)
    except GatewayError as err:
        await _error(services, request, send, _dialect_of(services, request), err)
        return
    content_type = CONTENT_TYPE_LATEST.encode()
    await send_body(send, 200, services.metrics.render(), [(b"content-type", content_type)])


async def handle_probe(services: Services, request: Request, send: Send) -> None:
    """Connectivity probes (Claude Code sends ``HEAD /`` or ``HEAD /api/hello``)."""
    await send_json(send, 200, b'{"service":"relaygate"}')


async def handle_models(services: Services, request: Request, send: Send) -> None:
    dialect = _dialect_of(services, request)
    try:
        names = _visible_models(services, request)
    except GatewayError as err:
        await _error(services, request, send, dialect, err)
        return
    if dialect.name == "anthropic":
        entries = [_anthropic_model(name) for name in names]
        payload: dict[str, object] = {
            "data": entries,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    else:
        payload = {"object": "list", "data": [_openai_model(name) for name in names]}
    await send_json(send, 200, orjson.dumps(payload))


async def handle_model(services: Services, request: Request, send: Send) -> None:
    dialect = _dialect_of(services, request)
    model_id = request.path.rsplit("/models/", 1)[1]
    try:
        names = _visible_models(services, request)
        if model_id not in names:
            raise ModelNotFoundError(model_id, names)
    except GatewayError as err:
        await _error(services, request, send, dialect, err)
        return
    route = services.catalog.get(model_id)
    name = route.name if route is not None else model_id
    entry = _anthropic_model(name) if dialect.name == "anthropic" else _openai_model(name)
    await send_json(send, 200, orjson.dumps(entry))


def _visible_models(services: Services, request: Request) -> list[str]:
    key = services.keys.authenticate(extract_api_key(request.headers))
    allowed = key.allowed_models
    return [name for name in services.catalog.model_names if not allowed or name in allowed]


def _openai_model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": "relaygate"}


def _anthropic_model(name: str) -> dict[str, object]:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(MODEL_CREATED))
    return {"type": "model", "id": name, "display_name": name, "created_at": created}


def _dialect_of(services: Services, request: Request) -> Dialect:
    return services.anthropic if "anthropic-version" in request.headers else services.openai


async def _error(
    services: Services, request: Request, send: Send, dialect: Dialect, err: GatewayError
) -> None:
    ctx = RequestContext(new_request_id(request), "models", dialect.name)
    await send_error(ctx, send, dialect, err, services.redactor)
