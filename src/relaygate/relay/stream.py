"""Streamed answers.

An attempt counts as begun only once the upstream's first body chunk has arrived and holds no error:
until then nothing has reached the caller, so the attempt loop may still retry or fail over. After
that every chunk is flushed as it arrives. A same-dialect upstream's bytes pass unchanged while
the provider's parser watches them (usage, errors); otherwise parser events are re-encoded. An
upstream that ignored ``stream`` and answered whole JSON is relayed as a stream (``json_answer``).

Every error event the caller gets (the upstream's own, relayed, or one the gateway writes) goes out
through the request's ``Redactor``: upstreams may quote the key they were sent. So that an error
frame is always redacted whole, raw bytes pass only while chunks end between frames; a chunk that
ends inside a frame switches to re-encoding the complete frames until the stream is between frames
again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import orjson

from relaygate.core.context import RequestContext
from relaygate.core.errors import GatewayError, UpstreamError
from relaygate.core.events import StreamError, StreamEvent, TextDelta, ThinkingDelta, ToolArgsDelta
from relaygate.core.redact import Redactor
from relaygate.core.sse import SSEDecoder, SSEFrame, encode_frame
from relaygate.core.types import ChatRequest
from relaygate.dialects.base import Dialect, StreamEncoder
from relaygate.providers.base import StreamParser
from relaygate.relay.attempts import AttemptRunner, settle_stream
from relaygate.relay.json_answer import (
    AnsweredParser,
    is_json_answer,
    read_rest,
    whole_answer_events,
)
from relaygate.routing.catalog import Deployment, ModelRoute
from relaygate.routing.health import Lease
from relaygate.transport.base import Timeouts, UpstreamResponse
from relaygate.web.request import Request, Send
from relaygate.web.responses import Headers, end_stream, send_chunk, start_stream


@dataclass(slots=True)
class OpenedStream:
    """An upstream stream whose first chunk arrived cleanly."""

    deployment: Deployment
    response: UpstreamResponse
    chunks: AsyncIterator[bytes]
    first_chunk: bytes
    decoder: SSEDecoder
    parser: StreamParser
    first_events: list[StreamEvent]
    first_frames: list[SSEFrame]
    lease: Lease | None = None
    # The upstream answered whole JSON: its bytes are no stream, so even a same-dialect caller
    # gets the events re-encoded.
    reencode: bool = False


async def open_stream(
    ctx: RequestContext, req: ChatRequest, route: ModelRoute, runner: AttemptRunner
) -> OpenedStream:
    async def attempt(dep: Deployment, timeouts: Timeouts) -> OpenedStream:
        upstream = dep.provider.build_request(req, dep.target, ctx.request_id)
        started = time.perf_counter()
        try:
            response = await dep.transport.send(upstream, timeouts)
            if response.status >= 400:
                body = await response.read()
                raise dep.provider.classify_error(response.status, response.headers, body)
            return await _first_chunk(dep, response)
        finally:
            ctx.upstream_seconds += time.perf_counter() - started

    held = await runner.run_held(ctx, route, attempt)
    held.value.lease = held.lease
    return held.value


async def _first_chunk(dep: Deployment, response: UpstreamResponse) -> OpenedStream:
    """The first body chunk: the transport bounds it by the first-byte deadline of ``send``
    (``NO_STREAM_DATA``), with the timer it already keeps for the stream's waits."""
    chunks = response.chunks().__aiter__()
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        response.close()
        raise UpstreamError(
            "upstream closed the stream before sending anything", retryable=True
        ) from None
    except UpstreamError:
        response.close()
        raise
    if is_json_answer(response.headers, first):
        return await _whole_answer(dep, response, first, chunks)
    decoder = SSEDecoder()
    parser = dep.provider.stream_parser()
    frames = decoder.feed(first)
    events = [event for frame in frames for event in parser.feed(frame)]
    for event in events:
        if isinstance(event, StreamError):
            response.close()
            err = event.error
            raise err if isinstance(err, UpstreamError) else UpstreamError(err.message)
    return OpenedStream(dep, response, chunks, first, decoder, parser, events, frames)


async def _whole_answer(
    dep: Deployment, response: UpstreamResponse, first: bytes, chunks: AsyncIterator[bytes]
) -> OpenedStream:
    """A stream request answered with whole JSON (the upstream ignored ``stream``)."""
    try:
        body = await read_rest(first, chunks)
        events, usage = whole_answer_events(dep.provider, body)
    except UpstreamError:
        response.close()
        raise
    parser = AnsweredParser(usage)
    return OpenedStream(
        dep, response, _no_chunks(), b"", SSEDecoder(), parser, events, [], reencode=True
    )


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield


class StreamPump:
    """Moves one opened upstream stream to the caller, chunk by chunk, and records the outcome."""

    def __init__(
        self,
        ctx: RequestContext,
        req: ChatRequest,
        dialect: Dialect,
        opened: OpenedStream,
        request: Request,
        send: Send,
        redactor: Redactor,
        *,
        on_events: Callable[[list[StreamEvent]], Awaitable[None]] | None = None,
    ) -> None:
        """``on_events`` sees every event before its bytes go to the caller (sessions record a
        completed answer there, so the caller's next request already finds it)."""
        self._ctx = ctx
        self._req = req
        self._dialect = dialect
        self._opened = opened
        self._send = send
        self._request = request
        self._passthrough = opened.deployment.wire == req.dialect and not opened.reencode
        # OpenAI upstreams are always asked for usage; hide that chunk from callers who did not ask.
        self._hide_usage_chunk = (
            self._passthrough and req.dialect == "openai" and not req.include_usage
        )
        self._encoder: StreamEncoder | None = (
            None if self._passthrough else dialect.stream_encoder(req)
        )
        self._failed = False
        self._redactor = redactor
        self._mid_frame = False  # the last chunk relayed ended inside a frame
        self._on_events = on_events

    async def run(self, headers: Headers) -> None:
        """Stream to the caller; stops early (closing the upstream) if the caller goes away."""
        try:
            await self._run(headers)
        finally:
            settle_stream(self._ctx, self._opened.lease)

    async def _run(self, headers: Headers) -> None:
        ctx, opened = self._ctx, self._opened
        await start_stream(self._send, headers)
        ctx.response_started = True
        ctx.first_token_at = time.perf_counter()
        try:
            # The first chunk goes out before any task is spawned: time to first token pays no
            # extra trip through the event loop.
            await self._emit(opened.first_chunk, opened.first_frames, opened.first_events)
            if await pump_while_connected(self._request, self._pump):
                ctx.outcome = "client_closed"
        finally:
            opened.response.close()
            ctx.usage = opened.parser.usage
        if ctx.outcome != "client_closed":
            await end_stream(self._send)

    async def _pump(self) -> None:
        ctx, opened = self._ctx, self._opened
        if self._failed:
            return
        decoder, parser = opened.decoder, opened.parser
        try:
            started = time.perf_counter()
            try:
                async for chunk in opened.chunks:
                    frames = decoder.feed(chunk)
                    if len(frames) == 1:
                        events = parser.feed(frames[0])
                    else:
                        events = [e for f in frames for e in parser.feed(f)]
                    await self._emit(chunk, frames, events)
                    if self._failed:
                        return
            finally:
                ctx.upstream_seconds += time.perf_counter() - started
            await self._close_input()
        except UpstreamError as err:
            await self._fail(err)

    async def _emit(self, chunk: bytes, frames: list[SSEFrame], events: list[StreamEvent]) -> None:
        failure = None
        for event in events:
            if isinstance(event, StreamError):
                failure = event
                self._redactor.error(event.error)
        if self._on_events is not None and events:
            await self._on_events(events)
        if self._encoder is not None:
            out = b"".join(self._encoder.feed(event) for event in events)
        else:
            out = self._relayed(chunk, frames)
            if failure is not None:
                out = self._redactor.raw(out)
        if out:
            await send_chunk(self._send, out)
            self._ctx.delivered_chars += text_chars(events)
        if failure is not None:
            self._mark_failed(failure.error)
            if self._encoder is None and not failure.from_upstream:
                # Relayed bytes carry no error of their own: the caller must still see one.
                await self._fail(failure.error)

    def _relayed(self, chunk: bytes, frames: list[SSEFrame]) -> bytes:
        """The bytes a same-dialect caller gets: the chunk itself, unless a frame straddles
        chunks (then only complete frames, re-encoded) or the usage chunk must be hidden."""
        mid_frame, self._mid_frame = self._mid_frame, self._opened.decoder.pending
        if self._hide_usage_chunk and not all(map(_shown, frames)):
            return b"".join(encode_frame(f.data.encode(), f.event) for f in frames if _shown(f))
        if mid_frame or self._mid_frame:
            return b"".join(encode_frame(f.data.encode(), f.event) for f in frames)
        return chunk

    async def _close_input(self) -> None:
        opened = self._opened
        frames = opened.decoder.finish()
        await self._emit(b"", frames, [e for f in frames for e in opened.parser.feed(f)])
        closing = opened.parser.finish()
        for event in closing:
            if isinstance(event, StreamError):
                await self._fail(event.error)
                return
        if self._on_events is not None and closing:
            await self._on_events(closing)
        if self._encoder is not None and closing:
            await send_chunk(self._send, b"".join(self._encoder.feed(e) for e in closing))

    async def _fail(self, err: GatewayError) -> None:
        """The upstream broke mid-stream: tell the caller in its dialect, never end quietly."""
        self._redactor.error(err)
        self._mark_failed(err)
        self._failed = True
        encoder = self._encoder or self._dialect.stream_encoder(self._req)
        await send_chunk(self._send, encoder.feed(StreamError(err)))

    def _mark_failed(self, err: GatewayError) -> None:
        self._ctx.outcome = "partial"
        self._ctx.error_kind = err.kind


async def pump_while_connected(request: Request, pump: Callable[[], Awaitable[None]]) -> bool:
    """Run ``pump()`` in this task, cancelled if the caller goes away first; True when the caller
    left before the pump ended. The server's ``CallerWatch`` calls back on the connection's loss
    (no task); without one, a watcher task waits for ``http.disconnect`` (one task less than a
    task each and ``asyncio.wait`` for the first to end)."""
    task = asyncio.current_task()
    assert task is not None
    caller_left = False

    def cancel() -> None:
        # Called only while the pump waits (a loop callback, or the watcher task's step), so
        # the cancellation lands inside it.
        nonlocal caller_left
        caller_left = True
        task.cancel()

    async def watch() -> None:
        await request.wait_disconnect()
        cancel()

    caller_watch = request.caller_watch()
    watcher = None
    if caller_watch is not None:
        caller_watch.watch_caller(cancel)
    else:
        watcher = asyncio.ensure_future(watch())
    try:
        await pump()
    except asyncio.CancelledError:
        if not caller_left or task.uncancel() > 0:
            raise  # cancelled from outside (too)
        return True
    finally:
        if watcher is not None:
            watcher.cancel()
        elif caller_watch is not None:
            caller_watch.watch_caller(None)
    return False


def text_chars(events: list[StreamEvent]) -> int:
    """Characters of answer text in ``events``: what a stream cut short is billed for."""
    total = 0
    for event in events:
        if isinstance(event, TextDelta):
            total += len(event.text)
        elif isinstance(event, ThinkingDelta):
            total += len(event.thinking)
        elif isinstance(event, ToolArgsDelta):
            total += len(event.partial_json)
    return total


def _shown(frame: SSEFrame) -> bool:
    """False for OpenAI's usage-only chunk (usage, no choices), which the caller did not ask for."""
    if not frame.data.startswith("{") or '"choices":[{' in frame.data:
        return True  # a chunk with an answer choice (compact JSON, as OpenAI sends): no parse
    try:
        payload = orjson.loads(frame.data)
    except orjson.JSONDecodeError:
        return True
    return not (isinstance(payload, dict) and payload.get("usage") and not payload.get("choices"))
