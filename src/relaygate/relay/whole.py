"""Whole (non-streamed) answers: one upstream round trip per attempt, then encode for the caller."""

from __future__ import annotations

import time
from collections.abc import Callable

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
    *,
    on_answer: Callable[[ChatResponse], None] | None = None,
) -> bytes:
    """The caller's response body. Same-dialect upstream bytes are returned unchanged.

    ``on_answer`` is given the parsed answer of the attempt that succeeded (sessions store it).
    """

    async def attempt(dep: Deployment, timeouts: Timeouts) -> bytes:
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
        if on_answer is not None:
            on_answer(parsed)
        if dep.wire == req.dialect:
            return body
        return dialect.encode_response(parsed)

    return await runner.run(ctx, route, attempt)
