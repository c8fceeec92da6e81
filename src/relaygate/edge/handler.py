"""The chat and count-tokens handlers shared by both dialects' routes.

Edge to edge: key -> body under the size cap -> its head (model) -> model route -> busy check
-> full decode -> relay (whole or streamed) -> encode in the caller's dialect. Every
``GatewayError`` is rendered once, here, in the caller's dialect; anything else becomes a 500
carrying the request id and is logged once.
"""

from __future__ import annotations

import logging
import math
import string

from relaygate.accounting.attribution import request_attribution
from relaygate.admission.messages import busy_message
from relaygate.auth.keys import extract_api_key
from relaygate.core.context import RequestContext
from relaygate.core.errors import GatewayError, InternalError, RateLimitedError
from relaygate.core.estimate import estimate_input_tokens
from relaygate.core.redact import Redactor
from relaygate.core.request_ids import generate_request_id
from relaygate.dialects.base import Dialect
from relaygate.observability.logging import log_request
from relaygate.relay.cached import Caller
from relaygate.relay.count_tokens import count_tokens
from relaygate.relay.history import with_history
from relaygate.relay.known_requests import KnownRequest
from relaygate.relay.stream import StreamPump, open_stream
from relaygate.relay.whole import relay_whole
from relaygate.services import Services
from relaygate.sessions import SESSION_HEADER, OpenSession
from relaygate.store.records import KeyRecord
from relaygate.web.request import Request, Send
from relaygate.web.responses import JSON_CONTENT, Headers, send_body

logger = logging.getLogger("relaygate.request")
_REQUEST_ID_CHARS = frozenset(string.ascii_letters + string.digits + "-_.:")
_CACHE_STATUS: dict[str | None, bytes] = {
    s: s.encode() for s in ("hit", "stale", "miss", "coalesced")
}


def new_request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given and len(given) <= 128 and set(given) <= _REQUEST_ID_CHARS:
        return given
    return generate_request_id()


async def handle_chat(services: Services, request: Request, send: Send, dialect: Dialect) -> None:
    ctx = RequestContext(new_request_id(request), f"{dialect.name}.chat", dialect.name)
    in_flight = services.metrics.in_flight
    in_flight.value += 1.0
    try:
        await _chat(services, ctx, request, send, dialect)
    except GatewayError as err:
        await send_error(ctx, send, dialect, err, services.redactor)
    except Exception:
        await _unhandled(ctx, send, dialect, services)
    finally:
        in_flight.value -= 1.0
        _finished(services, ctx)


async def _chat(
    services: Services, ctx: RequestContext, request: Request, send: Send, dialect: Dialect
) -> None:
    # The key comes from the headers: a bad key, a shed one or one whose own quota is spent is
    # refused before the body is read, so a refusal costs a fraction of a request.
    key = services.keys.authenticate(extract_api_key(request.headers))
    ctx.key_name = key.name
    if services.admission.overload.shedding:
        _shed_early(services, key)
    services.admission.refuse_spent_key(key)
    body = await request.body(services.settings.server.max_body_bytes)
    session_id = request.headers.get(SESSION_HEADER)
    # A session request is never answered from the cache: its turn must be recorded.
    cache = services.cache if session_id is None else None
    # A body the cache path saw before (the repeats a cache answers) is not parsed again.
    known = cache.recall(dialect, body, request.headers) if cache is not None else None
    head = known.head if known is not None else dialect.read_head(body)
    ctx.model_requested = head.model
    ctx.stream = head.stream
    ctx.end_user, ctx.tags = request_attribution(request.headers, head.user)
    route = services.catalog.resolve(head.model, key.allowed_models)
    services.keys.check_model(key, route.name)
    # A request that may not wait for its busy model is refused before the full decode.
    services.admission.refuse_busy(key, route, request.headers, ctx.elapsed())
    if known is not None:
        req = known.req
    else:
        req = dialect.decode_head(head, request.headers)
        if cache is not None:
            known = KnownRequest(head, req)
    session: OpenSession | None = None
    if session_id is not None:
        book = services.sessions
        session = await book.open(session_id, key.id, book.policy(key.name, route.name), req)
        req = with_history(req, session.history)
    if cache is not None and known is not None and _serves_stale(services, route.name):
        plan = cache.plan(key.name, route, known, body, request.headers)
        caller = Caller(ctx, req, route, dialect, request, send, _success_headers)
        if plan is not None and await cache.serve_stale(caller, plan):
            return
    # The wait budget counts from the request's arrival (its context's start), not the queue's.
    ticket = await services.admission.admit(key, route, req, request.headers, ctx.elapsed())
    ctx.capacity = ticket.capacity
    ctx.waited_seconds += ticket.queued_seconds
    route = ticket.route
    try:
        await services.accounting.reserve(ctx, key, req, route)
        plan = None
        if cache is not None and known is not None:
            plan = cache.plan(key.name, route, known, body, request.headers)
        if cache is not None and plan is not None:
            caller = Caller(ctx, req, route, dialect, request, send, _success_headers)
            await cache.answer(caller, plan)
            return
        if req.stream:
            opened = await open_stream(ctx, req, route, services.runner)
            observe = session.observe if session is not None else None
            pump = StreamPump(
                ctx, req, dialect, opened, request, send, services.redactor, on_events=observe
            )
            await pump.run(_success_headers(ctx))
            return
        if session is None:
            out = await relay_whole(ctx, req, route, dialect, services.runner)
        else:
            out = await relay_whole(
                ctx, req, route, dialect, services.runner, on_answer=session.answered
            )
            # Before the answer goes out: the caller's next request must already find it.
            await session.record(session.answer)
        await send_body(send, 200, out, [JSON_CONTENT, *_success_headers(ctx)])
    finally:
        services.admission.finish(ticket, ctx)


def _serves_stale(services: Services, model: str) -> bool:
    """Whether ``model``'s degradation level says to answer from expired cache entries."""
    degrade = services.admission.degrade
    if not degrade.enabled:
        return False
    actions = degrade.get(model).actions()
    return actions is not None and actions.serve_stale


def _shed_early(services: Services, key: KeyRecord) -> None:
    """While this process is overloaded, refuse a low-priority key before its body is read."""
    retry = services.admission.overload.should_shed(key.priority)
    if retry is not None:
        raise RateLimitedError(busy_message(retry), retry_after=retry)


async def handle_count_tokens(services: Services, request: Request, send: Send) -> None:
    dialect = services.anthropic
    ctx = RequestContext(new_request_id(request), "anthropic.count_tokens", "anthropic")
    try:
        key = services.keys.authenticate(extract_api_key(request.headers))
        ctx.key_name = key.name
        body = await request.body(services.settings.server.max_body_bytes)
        req = dialect.decode_count_tokens(body, request.headers)
        ctx.model_requested = req.model
        route = services.catalog.resolve(req.model, key.allowed_models)
        services.keys.check_model(key, route.name)
        counted = await count_tokens(ctx, req, route)
        headers = _success_headers(ctx)
        if counted is None:
            counted = estimate_input_tokens(req)
            headers.append((b"x-relaygate-token-count", b"estimate"))
        await send_body(send, 200, dialect.encode_count_tokens(counted), [JSON_CONTENT, *headers])
    except GatewayError as err:
        await send_error(ctx, send, dialect, err, services.redactor)
    except Exception:
        await _unhandled(ctx, send, dialect, services)
    finally:
        _finished(services, ctx)


def _finished(services: Services, ctx: RequestContext) -> None:
    """The ledger row, metrics and log line of a finished request, timed by one clock read."""
    elapsed = ctx.elapsed()
    services.accounting.finish(ctx, elapsed)
    services.metrics.observe(ctx, elapsed)
    log_request(logger, ctx, elapsed)


async def _unhandled(ctx: RequestContext, send: Send, dialect: Dialect, services: Services) -> None:
    """A bug: logged once with its traceback; the caller gets a 500 in its dialect if it can."""
    logger.exception("unhandled error", extra={"fields": {"request_id": ctx.request_id}})
    if not ctx.response_started:
        internal = InternalError("Internal gateway error")
        await send_error(ctx, send, dialect, internal, services.redactor)


_CACHE_SKIPPED = (b"x-relaygate-cache", b"skip")  # the cache not asked: every refusal
# Retry-After headers of the first hour, made once: every 429 carries one.
_RETRY_AFTERS = tuple((b"retry-after", b"%d" % max(1, seconds)) for seconds in range(3601))


def _success_headers(ctx: RequestContext) -> Headers:
    headers: Headers = [
        (b"x-request-id", ctx.request_id.encode()),
        (b"x-relaygate-overhead-ms", f"{ctx.overhead_seconds() * 1000:.3f}".encode()),
        (b"x-relaygate-cache", _CACHE_STATUS.get(ctx.cache_status, b"skip")),
    ]
    if ctx.model_used:
        headers.append((b"x-relaygate-model", ctx.model_used.encode()))
    if ctx.attempts:
        headers.append((b"x-relaygate-attempts", str(len(ctx.attempts)).encode()))
    return headers


async def send_error(
    ctx: RequestContext, send: Send, dialect: Dialect, err: GatewayError, redactor: Redactor
) -> None:
    """Render ``err`` for the caller: every error a caller gets outside a begun stream comes here,
    and its message (an upstream's words, maybe quoting the key it was sent) is redacted first."""
    redactor.error(err)
    ctx.status = err.status
    ctx.outcome = "error"
    ctx.error_kind = err.kind
    cache_status = ctx.cache_status
    headers: Headers = [
        JSON_CONTENT,
        (b"x-request-id", ctx.request_id.encode()),
        _CACHE_SKIPPED
        if cache_status is None
        else (b"x-relaygate-cache", _CACHE_STATUS.get(cache_status, b"skip")),
    ]
    retry = err.retry_after
    if retry is not None:
        # Whole seconds, rounded up, at least 1; the first hour's headers made once.
        whole = math.ceil(retry) if retry > 0.0 else 1
        headers.append(_RETRY_AFTERS[whole] if whole < 3601 else (b"retry-after", b"%d" % whole))
    if err.kind == "budget_exhausted":
        # Not transient: tell the official SDKs not to retry it.
        headers.append((b"x-should-retry", b"false"))
    await send_body(send, err.status, dialect.encode_error(err, ctx.request_id), headers)
