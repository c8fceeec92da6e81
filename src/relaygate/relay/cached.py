"""The request path of a cacheable request: cache lookup, coalescing, the upstream call, replay.

A hit replays the stored answer; a miss starts a flight (``relaygate.cache.flights``) whose
producer makes the one upstream call and pushes its neutral events, and an identical request
arriving meanwhile follows that flight instead of calling again. Every caller, the leader
included, reads the flight and gets the events encoded in its own dialect, whole or streamed;
the producer runs on its own task, so the leader's caller leaving does not end the call for the
followers. Once the call completed without an error its answer is stored. Same-dialect answers
are re-encoded from the neutral events on this path, not passed through byte for byte.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass

from relaygate.cache import (
    AnswerBuilder,
    Flight,
    Flights,
    ResponseCache,
    encode_entry,
)
from relaygate.core.context import RequestContext
from relaygate.core.errors import GatewayError, InternalError, UpstreamError
from relaygate.core.events import StreamError, StreamEvent, answer_events
from relaygate.core.redact import Redactor
from relaygate.core.types import ChatRequest, ChatResponse, Usage
from relaygate.dialects.base import Dialect
from relaygate.observability.cache_metrics import CacheMetrics
from relaygate.relay.attempts import AttemptRunner, settle_stream
from relaygate.relay.cache_plan import CachePlan, CachePlanner
from relaygate.relay.known_requests import KnownRequest, KnownRequests
from relaygate.relay.replays import Replays
from relaygate.relay.stream import open_stream, pump_while_connected, text_chars
from relaygate.relay.whole import fetch_answer
from relaygate.routing.catalog import ModelRoute
from relaygate.settings.cache import CacheSettings
from relaygate.web.request import Request, Send
from relaygate.web.responses import (
    JSON_CONTENT,
    Headers,
    end_stream,
    send_body,
    send_chunk,
    start_stream,
)

PriceOf = Callable[[str, Usage], float]
HeadersOf = Callable[[RequestContext], Headers]


@dataclass(slots=True, frozen=True)
class Caller:
    """One caller of the cache path: its request, route, dialect and connection."""

    ctx: RequestContext
    req: ChatRequest
    route: ModelRoute
    dialect: Dialect
    request: Request
    send: Send
    headers: HeadersOf


class ResponseCachePath:
    """The response cache and the in-process flights of one gateway process."""

    def __init__(
        self,
        settings: CacheSettings,
        backend: ResponseCache,
        runner: AttemptRunner,
        metrics: CacheMetrics,
        redactor: Redactor,
        price_of: PriceOf,
    ) -> None:
        self.settings = settings
        self.planner = CachePlanner(settings)
        self.backend = backend
        self.flights = Flights()
        self._replays = Replays()
        self._known = KnownRequests()
        self._runner = runner
        self._metrics = metrics
        self._redactor = redactor
        self._price_of = price_of

    def recall(
        self, dialect: Dialect, body: bytes, headers: Mapping[str, str]
    ) -> KnownRequest | None:
        """The parse and decode of ``body`` when an earlier cacheable request had the same."""
        return self._known.recall(dialect.name, body, headers)

    def plan(
        self,
        key_name: str,
        route: ModelRoute,
        known: KnownRequest,
        body: bytes,
        headers: Mapping[str, str],
    ) -> CachePlan | None:
        """The plan of the request ``body`` parsed and decoded to (``known``); a cacheable one's
        parse and decode are kept for the next request with the same body."""
        plan = self.planner.plan(key_name, route.name, known.req, headers, known.plans)
        if plan is not None:
            self._known.keep(body, headers, known)
        return plan

    async def close(self) -> None:
        await self.flights.close()
        await self.backend.close()

    async def serve_stale(self, caller: Caller, plan: CachePlan) -> bool:
        """Answer from the cache, expired entries too (a degraded model); False when none."""
        found = await self.backend.get(plan.key, allow_stale=True)
        answer = self._replays.answer(found.value) if found is not None else None
        if found is None or answer is None:
            return False
        await self._replay(caller, found.value, answer, "stale" if found.stale else "hit")
        return True

    async def answer(self, caller: Caller, plan: CachePlan) -> None:
        ctx, route = caller.ctx, caller.route
        if plan.mode == "use":
            found = await self.backend.get(plan.key)
            if found is not None:
                answer = self._replays.answer(found.value)
                if answer is not None:
                    await self._replay(caller, found.value, answer, "hit")
                    return
                await self.backend.delete(plan.key)  # corrupt: a miss
        shared = plan.coalesce and plan.mode == "use"
        flight = self.flights.join(plan.key) if shared else None
        if flight is None:
            ctx.cache_status = "miss"
            produce = functools.partial(self._produce, ctx, caller.req, route, plan)
            flight = self.flights.start(plan.key if shared else object(), produce)
            flight.leader = ctx.request_id
            self._metrics.record(route.name, "miss")
            await deliver(caller, flight)
            if flight.followers:
                await answers_first()
            return
        ctx.cache_status = "coalesced"
        ctx.coalesced_with = flight.leader
        try:
            await deliver(caller, flight)
        finally:
            ctx.model_used = flight.model or route.name
            self._saved(ctx, route, flight.deployment, "coalesced")
        await answers_first()

    async def _replay(
        self, caller: Caller, stored: bytes, answer: ChatResponse, status: str
    ) -> None:
        """Answer with ``answer``, the entry ``stored`` decoded."""
        ctx, route = caller.ctx, caller.route
        ctx.cache_hit = True
        ctx.cache_status = status
        ctx.model_used = route.name
        ctx.usage = answer.usage
        self._saved(ctx, route, route.deployments[0].id, status)
        if not caller.req.stream:
            # The common hit: the caller's encoding, made once per entry, no events in between.
            body = self._replays.body(stored, caller.dialect)
            await send_body(caller.send, 200, body, [JSON_CONTENT, *caller.headers(ctx)])
            return
        flight = Flight()
        flight.push(answer_events(answer))
        flight.finish()
        await deliver(caller, flight)

    def _saved(
        self, ctx: RequestContext, route: ModelRoute, deployment: str | None, result: str
    ) -> None:
        """Count what an answer without an upstream call of its own saved; with
        ``hit_charge: full`` the caller's row is priced as if it had called ``deployment``."""
        usage = ctx.usage or Usage()
        usd = self._price_of(deployment, usage) if deployment is not None else 0.0
        self._metrics.record(route.name, result, usage.total_tokens, usd)
        if self.settings.hit_charge == "full":
            ctx.deployment = deployment

    async def _produce(
        self,
        ctx: RequestContext,
        req: ChatRequest,
        route: ModelRoute,
        plan: CachePlan,
        flight: Flight,
    ) -> None:
        """The one upstream call of a flight (on the leader's context), then the store."""
        try:
            if req.stream:
                await self._produce_stream(ctx, req, route, flight)
            else:
                flight.push(answer_events(await fetch_answer(ctx, req, route, self._runner)))
        except GatewayError as err:
            self._redactor.error(err)
            raise
        flight.model, flight.deployment = ctx.model_used, ctx.deployment
        flight.finish()
        answer = complete_answer(flight.events)
        if answer is not None:
            await self.backend.set(plan.key, encode_entry(answer), plan.ttl_seconds)

    async def _produce_stream(
        self, ctx: RequestContext, req: ChatRequest, route: ModelRoute, flight: Flight
    ) -> None:
        opened = await open_stream(ctx, req, route, self._runner)
        failed: GatewayError | None = None
        started = time.perf_counter()
        try:
            failed = self._push(flight, opened.first_events)
            async for chunk in opened.chunks:
                frames = opened.decoder.feed(chunk)
                failed = self._push(flight, [e for f in frames for e in opened.parser.feed(f)])
                if failed is not None:
                    break
            if failed is None:
                frames = opened.decoder.finish()
                events = [e for f in frames for e in opened.parser.feed(f)]
                failed = self._push(flight, events + opened.parser.finish())
        except UpstreamError as err:
            failed = err
            self._push(flight, [StreamError(err)])
        finally:
            ctx.upstream_seconds += time.perf_counter() - started
            opened.response.close()
            ctx.usage = opened.parser.usage
            if failed is not None:
                ctx.outcome, ctx.error_kind = "partial", failed.kind
            settle_stream(ctx, opened.lease)

    def _push(self, flight: Flight, events: list[StreamEvent]) -> GatewayError | None:
        """Push ``events`` (errors redacted first); the error one of them carries, if any."""
        failed = None
        for event in events:
            if isinstance(event, StreamError):
                failed = self._redactor.error(event.error)
        flight.push(events)
        return failed


async def answers_first() -> None:
    """Let every caller the flight's end woke send its answer before this one goes on to its
    ledger row, log line and metrics: those wait one turn of the loop, so hundreds of coalesced
    answers leave at the cost of their writes alone, not of everyone's bookkeeping before them."""
    await asyncio.sleep(0)


def complete_answer(events: list[StreamEvent]) -> ChatResponse | None:
    """The whole answer ``events`` carried, or None when they hold an error or no end."""
    builder = AnswerBuilder()
    for event in events:
        if isinstance(event, StreamError):
            return None
        builder.feed(event)
    return builder.build()


async def deliver(caller: Caller, flight: Flight) -> None:
    """Answer the caller from ``flight`` in its dialect, streamed or whole. An error before the
    first event is raised (the handler renders it); one mid-stream ends the stream."""
    reader = flight.read()
    try:
        first = await anext(reader, None)
        if first is None:
            raise InternalError("the upstream call ended without an answer")
        if isinstance(first, StreamError):
            raise first.error
        if caller.req.stream:
            await _stream(caller, first, reader)
        else:
            await _whole(caller, first, reader, flight)
    finally:
        await reader.aclose()


async def _whole(
    caller: Caller, first: StreamEvent, reader: AsyncGenerator[StreamEvent, None], flight: Flight
) -> None:
    events = [first]
    async for event in reader:
        if isinstance(event, StreamError):
            raise event.error
        events.append(event)
    # The reader ended, so the flight has: every caller of this dialect gets the same body.
    whole = flight.wholes.get(caller.dialect.name)
    if whole is None:
        answer = complete_answer(events)
        if answer is None:
            raise UpstreamError("the upstream answer was incomplete")
        whole = flight.wholes[caller.dialect.name] = (
            answer,
            caller.dialect.encode_response(answer),
        )
    answer, body = whole
    ctx = caller.ctx
    ctx.usage = answer.usage
    await send_body(caller.send, 200, body, [JSON_CONTENT, *caller.headers(ctx)])


async def _stream(
    caller: Caller, first: StreamEvent, reader: AsyncGenerator[StreamEvent, None]
) -> None:
    ctx, send = caller.ctx, caller.send
    await start_stream(send, caller.headers(ctx))
    ctx.response_started = True
    ctx.first_token_at = time.perf_counter()
    encoder = caller.dialect.stream_encoder(caller.req)
    builder = AnswerBuilder()

    async def pump() -> None:
        event: StreamEvent | None = first
        while event is not None:
            builder.feed(event)
            if isinstance(event, StreamError):
                ctx.outcome, ctx.error_kind = "partial", event.error.kind
            await send_chunk(send, encoder.feed(event))
            ctx.delivered_chars += text_chars([event])
            event = await anext(reader, None)

    # The first event goes out before any await, with the head (``relaygate.web.protocol``).
    if await pump_while_connected(caller.request, pump):
        ctx.outcome = "client_closed"
    answer = builder.build()
    if answer is not None:
        ctx.usage = answer.usage
    if ctx.outcome != "client_closed":
        await end_stream(send)
