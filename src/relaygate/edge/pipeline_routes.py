"""The pipeline API: events in, jobs out. Errors in the OpenAI error shape.

``POST /v1/pipelines/{name}/events`` (202 queued, 200 duplicate), ``GET /v1/jobs/{id}``,
``GET /v1/pipelines/{name}/jobs`` and ``POST /v1/jobs/{id}/retry``. A key sees only its own jobs
(another key's job is a 404, not a 403: its existence is not told).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from relaygate.auth.keys import extract_api_key
from relaygate.core.context import RequestContext
from relaygate.core.errors import (
    GatewayError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    clip,
)
from relaygate.edge.handler import new_request_id, send_error
from relaygate.jobs import JOB_STATUSES, Job, JobStatus
from relaygate.pipelines import CompiledPipeline, Pipelines
from relaygate.services import Services
from relaygate.store import StoreError, StoreUnavailableError
from relaygate.store.records import KeyRecord
from relaygate.web.request import Request, Send
from relaygate.web.responses import send_json

logger = logging.getLogger("relaygate.pipelines")
PIPELINES_PREFIX = "/v1/pipelines/"
JOBS_PREFIX = "/v1/jobs/"
MAX_EVENT_BYTES = 1024 * 1024
MAX_EVENT_ID_CHARS = 256
MAX_PAGE = 200


class PipelinesUnavailableError(GatewayError):
    status = 503
    kind = "unavailable"


def is_pipeline_path(path: str) -> bool:
    return path.startswith((PIPELINES_PREFIX, JOBS_PREFIX))


async def handle_pipeline_api(services: Services, request: Request, send: Send) -> None:
    ctx = RequestContext(new_request_id(request), "pipelines", "openai")
    try:
        await _route(services, request, send)
    except StoreUnavailableError as exc:
        logger.warning("pipeline API: %s", exc)
        err = PipelinesUnavailableError(
            "The job store is unavailable; try again shortly", retry_after=5.0
        )
        await send_error(ctx, send, services.openai, err, services.redactor)
    except GatewayError as err:
        await send_error(ctx, send, services.openai, err, services.redactor)
    except StoreError:
        logger.exception(
            "pipeline API: store error", extra={"fields": {"request_id": ctx.request_id}}
        )
        await send_error(
            ctx, send, services.openai, InternalError("Internal gateway error"), services.redactor
        )


async def _route(services: Services, request: Request, send: Send) -> None:
    parts = request.path.strip("/").split("/")
    for (method, shape), handler in ROUTES.items():
        if method != request.method:
            continue
        wanted = shape.strip("/").split("/")
        if len(wanted) == len(parts) and all(
            w == p or (w[0] == "{" and p) for w, p in zip(wanted, parts, strict=True)
        ):
            param = next(p for w, p in zip(wanted, parts, strict=True) if w[0] == "{")
            await handler(services, request, send, param)
            return
    raise NotFoundError(f"No route for {clip(request.method)} {clip(request.path)}")


def _caller(services: Services, request: Request) -> tuple[KeyRecord, Pipelines]:
    key = services.keys.authenticate(extract_api_key(request.headers))
    if services.pipelines is None:
        if services.settings.pipelines:
            raise PipelinesUnavailableError(
                "Pipelines are unavailable: the job store could not be opened"
            )
        raise NotFoundError("No pipelines are configured")
    return key, services.pipelines


def _pipeline(
    services: Services, pipelines: Pipelines, key: KeyRecord, name: str
) -> CompiledPipeline:
    pipeline = pipelines.get(name)
    if pipeline is None:
        known = ", ".join(sorted(pipelines.pipelines)) or "(none)"
        raise NotFoundError(f"Unknown pipeline '{clip(name)}'. Configured: {known}")
    route = services.catalog.resolve(pipeline.settings.model, key.allowed_models)
    services.keys.check_model(key, route.name)
    return pipeline


async def _post_event(services: Services, request: Request, send: Send, name: str) -> None:
    key, pipelines = _caller(services, request)
    pipeline = _pipeline(services, pipelines, key, name)
    limit = min(MAX_EVENT_BYTES, services.settings.server.max_body_bytes)
    event = _event(await request.body(limit))
    if event["callback_url"] is not None:
        _check_callback_host(event["callback_url"], pipeline.settings.callback_hosts)
    job, created = await pipelines.submit(
        pipeline,
        event_id=event["event_id"],
        key_name=key.name,
        data=event["data"],
        callback_url=event.get("callback_url"),
    )
    if created:
        await send_json(send, 202, orjson.dumps({"job_id": job.id, "status": job.status}))
        return
    body = {"job_id": job.id, "status": job.status, "duplicate": True}
    await send_json(send, 200, orjson.dumps(body))


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The body is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidRequestError("The body must be a JSON object with event_id and data")
    event_id = event.get("event_id")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        event_id = str(event_id)
    if not isinstance(event_id, str) or not event_id:
        raise InvalidRequestError("event_id is required: a non-empty string", param="event_id")
    if len(event_id) > MAX_EVENT_ID_CHARS:
        raise InvalidRequestError(
            f"event_id is longer than {MAX_EVENT_ID_CHARS} characters", param="event_id"
        )
    data = event.get("data")
    if not isinstance(data, dict):
        raise InvalidRequestError(
            'data is required: a JSON object (e.g. {"content": ...})', param="data"
        )
    callback = event.get("callback_url")
    if callback is not None and (
        not isinstance(callback, str) or not callback.startswith(("http://", "https://"))
    ):
        raise InvalidRequestError(
            "callback_url must be an http:// or https:// URL", param="callback_url"
        )
    return {"event_id": event_id, "data": data, "callback_url": callback}


def _check_callback_host(url: str, allowed: list[str] | None) -> None:
    """An event's own callback URL may not make the gateway POST into its own network."""
    host = (urlsplit(url).hostname or "").lower()
    if allowed is not None:
        if host not in {h.lower() for h in allowed}:
            raise InvalidRequestError(
                f"callback_url: host '{clip(host)}' is not in this pipeline's callback_hosts",
                param="callback_url",
            )
        return
    if not host or host == "localhost" or host.endswith(".localhost") or _internal_ip(host):
        raise InvalidRequestError(
            "callback_url: a loopback, private or link-local address is refused (the "
            "pipeline's callback_hosts can allow a host)",
            param="callback_url",
        )


def _internal_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name; what it resolves to is not checked here (see callback_hosts)
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
        or address.is_multicast
    )


async def _own_job(pipelines: Pipelines, key: KeyRecord, job_id: str) -> Job:
    job = await pipelines.job(job_id)
    if job is None or job.key_name != key.name:
        raise NotFoundError(f"No job '{clip(job_id)}'")
    return job


async def _send_job(send: Send, status: int, job: Job) -> None:
    await send_json(send, status, orjson.dumps(job.document()))


async def _list_jobs(services: Services, request: Request, send: Send, name: str) -> None:
    key, pipelines = _caller(services, request)
    _pipeline(services, pipelines, key, name)
    query = {k: v[-1] for k, v in parse_qs(request.query.decode("latin-1")).items()}
    status = query.get("status")
    if status is not None and status not in JOB_STATUSES:
        raise InvalidRequestError(
            f"status must be one of {', '.join(JOB_STATUSES)}", param="status"
        )
    limit_text = query.get("limit", "50")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
        raise InvalidRequestError(
            f"limit must be a whole number from 1 to {MAX_PAGE}", param="limit"
        )
    page = await pipelines.list_jobs(
        name,
        key_name=key.name,
        status=_status(status),
        limit=int(limit_text),
        cursor=query.get("cursor") or None,
    )
    body = {"jobs": [job.document() for job in page.jobs], "next_cursor": page.next_cursor}
    await send_json(send, 200, orjson.dumps(body))


def _status(text: str | None) -> JobStatus | None:
    for status in JOB_STATUSES:
        if status == text:
            return status
    return None


async def _get_job(services: Services, request: Request, send: Send, job_id: str) -> None:
    key, pipelines = _caller(services, request)
    await _send_job(send, 200, await _own_job(pipelines, key, job_id))


async def _retry(services: Services, request: Request, send: Send, job_id: str) -> None:
    key, pipelines = _caller(services, request)
    job = await _own_job(pipelines, key, job_id)
    requeued = await pipelines.retry(job.id)
    if requeued is None:
        raise InvalidRequestError(
            f"Only a dead or failed job can be retried; this one is {job.status}"
        )
    await _send_job(send, 202, requeued)


PipelineHandler = Callable[[Services, Request, Send, str], Awaitable[None]]
# (method, path) -> handler; the one ``{...}`` segment is passed to the handler (OpenAPI paths).
ROUTES: dict[tuple[str, str], PipelineHandler] = {
    ("POST", "/v1/pipelines/{name}/events"): _post_event,
    ("GET", "/v1/pipelines/{name}/jobs"): _list_jobs,
    ("GET", "/v1/jobs/{id}"): _get_job,
    ("POST", "/v1/jobs/{id}/retry"): _retry,
}
