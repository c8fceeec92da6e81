"""The OpenAPI 3.1 document of relaygate's own endpoints, served at ``GET /openapi.json``.

Written as data: each route is one call to ``_op`` below. Request bodies of the proxy routes are
described loosely (the required fields, the common ones, any others allowed: the gateway forwards
fields it does not know); the admin API's bodies come from its pydantic payload models, so they
cannot drift from what the API accepts. ``tests/unit/test_openapi.py`` checks that the document
and the app's route tables list the same routes, and that the document is valid OpenAPI.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from relaygate import __version__
from relaygate.edge.openapi_schemas import Schema, component_schemas, ref
from relaygate.services import Services
from relaygate.web.request import Request, Send
from relaygate.web.responses import send_json

_JSON = "application/json"


def _content(schema: Schema, media: str = _JSON) -> dict[str, Any]:
    return {media: {"schema": schema}}


def _response(description: str, schema: Schema | None = None, media: str = _JSON) -> Schema:
    found: Schema = {"description": description}
    if schema is not None:
        found["content"] = _content(schema, media)
    return found


def _errors(error: str, *statuses: int) -> dict[str, Schema]:
    reasons = {
        400: "Invalid request (the message names the field)",
        401: "Missing or invalid credentials",
        403: "The key may not use this model",
        404: "No such model, key or route",
        405: "Method not allowed here",
        409: "The name is taken",
        413: "Request body over the size limit",
        429: "Rate limited, over budget or busy (see Retry-After)",
        500: "Internal gateway error (the message names the request id)",
        502: "The upstream failed",
        503: "No upstream available, or the database is down",
        504: "The upstream did not answer in time",
    }
    return {str(s): _response(reasons[s], ref(error)) for s in statuses}


_PROXY_ERRORS = (400, 401, 403, 404, 413, 429, 500, 502, 503, 504)
_ADMIN_ERRORS = (400, 401, 404, 405, 500, 503)


def _op(
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    *,
    body: Schema | None = None,
    params: list[Schema] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> Schema:
    op: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": _content(body)}
    if params:
        op["parameters"] = params
    if security is not None:
        op["security"] = security
    return op


def _param(name: str, where: str, description: str) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, description: str) -> Schema:
    return _param(name, "query", description)


_API_KEY: list[dict[str, list[str]]] = [{"apiKeyBearer": []}, {"apiKeyHeader": []}]
_ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]
_PUBLIC: list[dict[str, list[str]]] = []


_SESSION = _param(
    "x-relaygate-session", "header", "A conversation session of this key: its turns go first"
)


def _sessions() -> Schema:
    errors = _errors("OpenAIError", 400, 401, 404, 503)
    deleted = _response("Forgotten", {"type": "object"})
    return {
        "parameters": [_param("session_id", "path", "At most 128 characters, no control ones")],
        "get": _op(
            "A session's stored turns",
            "proxy",
            {"200": _response("The turns, oldest first", ref("Session")), **errors},
        ),
        "delete": _op("Forget a session", "proxy", {"200": deleted, **errors}),
    }


def _openai_chat(summary: str) -> Schema:
    ok = _response("A chat completion, or with stream=true a text/event-stream of chunks", None)
    ok["content"] = {
        **_content(ref("OpenAIChatCompletion")),
        **_content({"type": "string"}, "text/event-stream"),
    }
    responses = {"200": ok, **_errors("OpenAIError", *_PROXY_ERRORS)}
    body = ref("OpenAIChatRequest")
    return {"post": _op(summary, "proxy", responses, body=body, params=[_SESSION])}


def _models(summary: str) -> Schema:
    responses = {
        "200": _response("OpenAI list, or Anthropic list with anthropic-version", ref("Models")),
        **_errors("OpenAIError", 401),
    }
    return {"get": _op(summary, "proxy", responses)}


def _model(summary: str) -> Schema:
    responses = {"200": _response("The model", ref("Model")), **_errors("OpenAIError", 401, 404)}
    param = _param("model_id", "path", "A model name or alias from the configuration")
    return {"get": _op(summary, "proxy", responses, params=[param])}


def _probe(summary: str, get: bool = False) -> Schema:
    ok = {"200": _response("The gateway answers", {"type": "object"})}
    item = {"head": _op(summary, "system", ok, security=_PUBLIC)}
    if get:
        item["get"] = _op(summary, "system", ok, security=_PUBLIC)
    return item


def _system(summary: str, schema: Schema, media: str = _JSON) -> Schema:
    ok = {"200": _response(summary, schema, media)}
    return {"get": _op(summary, "system", ok, security=_PUBLIC)}


def _pipeline(summary: str, status: str, *, body: Schema | None = None) -> Schema:
    responses = {
        status: _response(summary, {"type": "object"}),
        **_errors("OpenAIError", 400, 401, 403, 404, 413, 503),
    }
    return _op(summary, "pipelines", responses, body=body)


_PIPELINE_EVENT: Schema = {
    "type": "object",
    "required": ["event_id"],
    "properties": {
        "event_id": {"type": "string", "description": "Idempotency key within the pipeline"},
        "data": {"type": "object", "description": "Template variables, e.g. content"},
        "callback_url": {"type": "string", "description": "Where the finished job is POSTed"},
    },
}


def _admin(
    summary: str,
    *,
    body: Schema | None = None,
    params: list[Schema] | None = None,
    created: bool = False,
) -> Schema:
    ok = {("201" if created else "200"): _response(summary, {"type": "object"})}
    statuses = (*_ADMIN_ERRORS, 409) if created else _ADMIN_ERRORS
    responses = {**ok, **_errors("AdminError", *statuses)}
    return _op(summary, "admin", responses, body=body, params=params, security=_ADMIN)


_NAME = _param("name", "path", "The key's name")
_USAGE_PARAMS = [
    _query("by", "Group by key, model, day, user or tag:<name> (default key)"),
    _query("since", "Start: an ISO date or time, or a span such as 7d"),
    _query("until", "End: an ISO date or time"),
    _query("currency", "Report currency (default: accounting.currency)"),
    _query("key", "Only this key"),
    _query("user", "Only this end user"),
    _query("tag", "Only requests with this tag, as name=value"),
]


def _paths() -> dict[str, Schema]:
    anthropic_ok = _response("A message, or with stream=true a text/event-stream", None)
    anthropic_ok["content"] = {
        **_content(ref("AnthropicMessage")),
        **_content({"type": "string"}, "text/event-stream"),
    }
    count_ok = _response("The input token count", ref("CountTokensResponse"))
    return {
        "/v1/chat/completions": _openai_chat("OpenAI Chat Completions, to any configured model"),
        "/chat/completions": _openai_chat("OpenAI Chat Completions (without the /v1 prefix)"),
        "/v1/messages": {
            "post": _op(
                "Anthropic Messages (?beta=true accepted), to any configured model",
                "proxy",
                {"200": anthropic_ok, **_errors("AnthropicError", *_PROXY_ERRORS)},
                body=ref("AnthropicMessagesRequest"),
                params=[_SESSION],
            )
        },
        "/v1/messages/count_tokens": {
            "post": _op(
                "Count input tokens: forwarded to Anthropic-wire upstreams, else estimated "
                "(header x-relaygate-token-count: estimate)",
                "proxy",
                {"200": count_ok, **_errors("AnthropicError", 400, 401, 403, 404, 413, 502)},
                body=ref("CountTokensRequest"),
            )
        },
        "/v1/models": _models("The models this key may use"),
        "/models": _models("The models this key may use (without the /v1 prefix)"),
        "/v1/models/{model_id}": _model("One model"),
        "/models/{model_id}": _model("One model (without the /v1 prefix)"),
        "/v1/sessions/{session_id}": _sessions(),
        "/healthz": _system("Liveness", {"type": "object"}),
        "/readyz": _system("Readiness: the number of models served", {"type": "object"}),
        "/metrics": _system("Prometheus metrics", {"type": "string"}, "text/plain"),
        "/openapi.json": _system("This document", {"type": "object"}),
        "/": _probe("Connectivity probe", get=True),
        "/api/hello": _probe("Connectivity probe (Claude Code)"),
        "/v1/pipelines/{name}/events": {
            "parameters": [_param("name", "path", "A configured pipeline")],
            "post": _pipeline(
                "Queue a job for an event (202; a repeated event_id answers 200, duplicate)",
                "202",
                body=_PIPELINE_EVENT,
            ),
        },
        "/v1/pipelines/{name}/jobs": {
            "parameters": [
                _param("name", "path", "A configured pipeline"),
                _query("status", "queued, running, succeeded, failed or dead"),
                _query("limit", "Page size"),
                _query("cursor", "From the previous page's next_cursor"),
            ],
            "get": _pipeline("The key's jobs of a pipeline, newest first", "200"),
        },
        "/v1/jobs/{id}": {
            "parameters": [_param("id", "path", "A job id")],
            "get": _pipeline("One of the key's jobs: status, attempts, result or error", "200"),
        },
        "/v1/jobs/{id}/retry": {
            "parameters": [_param("id", "path", "A job id")],
            "post": _pipeline("Queue a dead or failed job again", "200"),
        },
        "/admin/keys": {
            "get": _admin("List keys with their limits, spend and status"),
            "post": _admin(
                "Create a key; the raw key is in the answer, once",
                body=ref("KeyCreate"),
                created=True,
            ),
        },
        "/admin/keys/{name}": {
            "parameters": [_NAME],
            "get": _admin("One key"),
            "patch": _admin("Change a key's limits (null clears one)", body=ref("KeyUpdate")),
            "delete": _admin("Revoke a key"),
        },
        "/admin/keys/{name}/top-up": {
            "parameters": [_NAME],
            "post": _admin("Add prepaid credit (a ledger entry)", body=ref("TopUp")),
        },
        "/admin/keys/{name}/balance": {
            "parameters": [_NAME],
            "get": _admin("A key's prepaid balance and its entries"),
        },
        "/admin/usage": {"get": _admin("Usage totals", params=_USAGE_PARAMS)},
        "/admin/usage/requests": {
            "get": _admin(
                "The newest ledger rows, a page at a time",
                params=[
                    _query("limit", "How many (default 100)"),
                    _query("offset", "How many of the newest matching rows to skip (default 0)"),
                    _query("key", "Only this key"),
                    _query("user", "Only this end user"),
                    _query("tag", "Only requests with this tag, as name=value"),
                    _query("model", "Only this model (the one used, else the one requested)"),
                    _query("status", "Only this HTTP status"),
                ],
            )
        },
        "/admin/bill": {
            "get": _admin(
                "Month-to-date bill per key with a projection",
                params=[_query("month", "YYYY-MM"), _query("currency", "Bill currency")],
            )
        },
        "/admin/pricing": {
            "get": _admin("The price table in use", params=[_query("currency", "Price currency")])
        },
        "/admin/ledger": {"get": _admin("Ledger writer state")},
        "/admin/alerts": {"get": _admin("The alerts firing now and the recently resolved ones")},
        "/admin/cache": {
            "delete": _admin(
                "Forget cached answers: all, one key's own, or one model's (both: their overlap)",
                params=[
                    _query("key", "Only this key's own entries"),
                    _query("model", "Only this model's (a name or alias)"),
                ],
            )
        },
    }


def openapi_document() -> dict[str, Any]:
    """The whole document as a dict."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "relaygate",
            "version": __version__,
            "description": "A self-hosted LLM relay gateway: the OpenAI and Anthropic dialects "
            "to any configured upstream, plus its system and admin endpoints. Errors always "
            "come in the caller's dialect.",
        },
        "tags": [
            {"name": "proxy", "description": "The two dialects' endpoints (an API key)"},
            {"name": "system", "description": "Health, readiness, metrics (no key)"},
            {"name": "admin", "description": "The admin API (an admin token)"},
        ],
        "security": _API_KEY,
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "apiKeyBearer": {"type": "http", "scheme": "bearer", "description": "rg-..."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "rgadmin-..."},
            },
            "schemas": component_schemas(),
        },
    }


@cache
def openapi_json() -> bytes:
    """The document serialised once per process."""
    return orjson.dumps(openapi_document())


async def handle_openapi(services: Services, request: Request, send: Send) -> None:
    await send_json(send, 200, openapi_json())
