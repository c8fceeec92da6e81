"""Whole (non-streamed) answers: one upstream round trip per attempt, then encode for the caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from relaygate.core.context import RequestContext
from relaygate.core.types import ChatRequest, ChatResponse
from relaygate.dialects.base import Dialect
from relaygate.relay.attempts import Attempt, AttemptRunner
from relaygate.routing.catalog import Deployment, ModelRoute
from relaygate.transport.base import Timeouts

T = TypeVar("T")


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

    def encode(dep: Deployment, body: bytes, parsed: ChatResponse) -> bytes:
        if on_answer is not None:
            on_answer(parsed)
        if dep.wire == req.dialect:
            return body
        return dialect.encode_response(parsed)

    return await runner.run(ctx, route, _attempt(ctx, req, encode))


async def fetch_answer(
    ctx: RequestContext, req: ChatRequest, route: ModelRoute, runner: AttemptRunner
) -> ChatResponse:
    """The answer in the neutral form: what the response cache stores and replays, and what
    work the gateway does itself (pipeline jobs) reads; the same attempts, failover and fallbacks
    as a caller's request."""
    return await runner.run(ctx, route, _attempt(ctx, req, _parsed))


def _parsed(dep: Deployment, body: bytes, parsed: ChatResponse) -> ChatResponse:
    return parsed


def _attempt(
    ctx: RequestContext, req: ChatRequest, finish: Callable[[Deployment, bytes, ChatResponse], T]
) -> Attempt[T]:
    async def attempt(dep: Deployment, timeouts: Timeouts) -> T:
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
        return finish(dep, body, parsed)

    return attempt
