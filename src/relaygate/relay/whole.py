"""Whole (non-streamed) answers: one upstream round trip per attempt, then encode for the caller."""

from __future__ import annotations

import time

from relaygate.core.context import RequestContext
from relaygate.core.types import ChatRequest, ChatResponse
from relaygate.dialects.base import Dialect
from relaygate.relay.attempts import AttemptRunner
from relaygate.routing.catalog import Deployment, ModelRoute
from relaygate.transport.base import Timeouts


async def relay_whole(
    ctx: RequestContext,
    req: ChatRequest,
    route: ModelRoute,
    dialect: Dialect,
    runner: AttemptRunner,
) -> bytes:
    """The caller's response body. Same-dialect upstream bytes are returned unchanged."""

    async def attempt(dep: Deployment, timeouts: Timeouts) -> bytes:
        body, parsed = await _round_trip(ctx, req, dep, timeouts)
        if dep.wire == req.dialect:
            return body
        return dialect.encode_response(parsed)

    return await runner.run(ctx, route, attempt)


async def relay_answer(
    ctx: RequestContext, req: ChatRequest, route: ModelRoute, runner: AttemptRunner
) -> ChatResponse:
    """The neutral answer, for work the gateway does itself (pipeline jobs): the same attempts,
    failover and fallbacks as a caller's request, with no dialect to encode for."""

    async def attempt(dep: Deployment, timeouts: Timeouts) -> ChatResponse:
        return (await _round_trip(ctx, req, dep, timeouts))[1]

    return await runner.run(ctx, route, attempt)


async def _round_trip(
    ctx: RequestContext, req: ChatRequest, dep: Deployment, timeouts: Timeouts
) -> tuple[bytes, ChatResponse]:
    upstream = dep.provider.build_request(req, dep.target, ctx.request_id)
    started = time.perf_counter()
    try:
        response = await dep.transport.send(upstream, timeouts)
        body = await response.read()
    finally:
        ctx.upstream_seconds += time.perf_counter() - started
    if response.status >= 400:
        raise dep.provider.classify_error(response.status, response.headers, body)
    parsed = dep.provider.parse_response(body)
    ctx.usage = parsed.usage
    return body, parsed
