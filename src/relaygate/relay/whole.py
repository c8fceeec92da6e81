"""Whole (non-streamed) answers: one upstream round trip per attempt, then encode for the caller."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from relaygate.core.context import RequestContext
from relaygate.core.types import ChatRequest, ChatResponse
from relaygate.dialects.base import Dialect
from relaygate.relay.attempts import Attempt, AttemptRunner
from relaygate.routing.catalog import Deployment, ModelRoute
from relaygate.transport.base import Timeouts

T = TypeVar("T")


def relay_whole(
    ctx: RequestContext,
    req: ChatRequest,
    route: ModelRoute,
    dialect: Dialect,
    runner: AttemptRunner,
    *,
    on_answer: Callable[[ChatResponse], None] | None = None,
) -> Coroutine[Any, Any, bytes]:
    """The caller's response body. Same-dialect upstream bytes are returned unchanged.

    ``on_answer`` is given the parsed answer of the attempt that succeeded (sessions store it).
    A same-dialect answer nobody needs parsed is only checked and its usage read
    (``Provider.answer_usage``): its bytes are what the caller gets. Returns the attempt
    loop's coroutine itself (one coroutine fewer to resume at each wait of the exchange).
    """

    def answer(dep: Deployment, body: bytes) -> bytes:
        provider = dep.provider
        if on_answer is None and dep.wire == req.dialect:
            ctx.usage = provider.answer_usage(body)
            return body
        parsed = provider.parse_response(body)
        ctx.usage = parsed.usage
        if on_answer is not None:
            on_answer(parsed)
        if dep.wire == req.dialect:
            return body
        return dialect.encode_response(parsed)

    return runner.run(ctx, route, _attempt(ctx, req, answer))


async def fetch_answer(
    ctx: RequestContext, req: ChatRequest, route: ModelRoute, runner: AttemptRunner
) -> ChatResponse:
    """The answer in the neutral form: what the response cache stores and replays, and what
    work the gateway does itself (pipeline jobs) reads; the same attempts, failover and fallbacks
    as a caller's request."""

    def answer(dep: Deployment, body: bytes) -> ChatResponse:
        parsed = dep.provider.parse_response(body)
        ctx.usage = parsed.usage
        return parsed

    return await runner.run(ctx, route, _attempt(ctx, req, answer))


def _attempt(
    ctx: RequestContext, req: ChatRequest, finish: Callable[[Deployment, bytes], T]
) -> Attempt[T]:
    """One attempt: the upstream's 2xx body handed to ``finish`` (which sets ``ctx.usage``),
    an error status raised as the provider classifies it."""

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
        return finish(dep, body)

    return attempt
