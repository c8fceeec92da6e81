"""The mock's model endpoints: decode with the wire's dialect, answer with the engine, encode back.

Faults, the account-style concurrency limit, latency and stream pacing are applied here.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass

from relaygate.core.errors import GatewayError, RateLimitedError
from relaygate.core.events import StreamEvent, TextDelta, ThinkingDelta, ToolArgsDelta
from relaygate.core.types import ChatRequest, ChatResponse
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.mock.asgi import JSON_TYPE, SSE_HEADERS, Receive, Send, wait_for_disconnect
from relaygate.mock.directives import last_user_turn, parse_directives
from relaygate.mock.engine import (
    build_reply,
    check_thinking_signatures,
    estimate_input_tokens,
    reply_events,
)
from relaygate.mock.faults import (
    FAULT_HEADER,
    HANG_SECONDS,
    FaultKind,
    FaultPlan,
    fault_error,
    malformed_body,
    malformed_frame,
    retry_after_header,
)
from relaygate.mock.stats import MockStats
from relaygate.settings.model import MockSettings

_FIRST_TOKEN_EVENTS = (TextDelta, ThinkingDelta, ToolArgsDelta)
_MORE = True


# The two wires the mock speaks; concrete classes, so count_tokens needs no extra protocol.
WireDialect = OpenAIDialect | AnthropicDialect


@dataclass(slots=True)
class Exchange:
    """One request's reply channel: the dialect to render in and the ASGI callables."""

    dialect: WireDialect
    seq: int
    receive: Receive
    send: Send
    stats: MockStats

    @property
    def request_id(self) -> str:
        return f"req_mock_{self.seq}"

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.stats.status(status)
        headers.append((b"x-request-id", self.request_id.encode()))
        headers.append((b"request-id", self.request_id.encode()))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, more: bool = False) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def whole(
        self, status: int, data: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        headers = [JSON_TYPE, *extra, (b"content-length", str(len(data)).encode())]
        await self.start(status, headers)
        await self.body(data)

    async def error(self, err: GatewayError) -> None:
        extra: tuple[tuple[bytes, bytes], ...] = ()
        if err.retry_after is not None:
            extra = ((b"retry-after", retry_after_header(err.retry_after).encode()),)
        await self.whole(err.status, self.dialect.encode_error(err, self.request_id), extra)


class MockChat:
    """Answers chat and count-tokens requests for one mock server."""

    def __init__(
        self, settings: MockSettings, rng: random.Random, faults: FaultPlan, stats: MockStats
    ) -> None:
        self._settings = settings
        self._rng = rng
        self._faults = faults
        self._stats = stats
        self._seq = itertools.count(1)

    def exchange(self, dialect: WireDialect, receive: Receive, send: Send) -> Exchange:
        """A reply channel for a new request, numbered in arrival order."""
        return Exchange(dialect, next(self._seq), receive, send, self._stats)

    def over_limit(self) -> GatewayError | None:
        """The refusal a provider account gives past its concurrency limit, if over it now."""
        limit = self._settings.max_concurrency
        if limit and self._stats.in_flight > limit:
            retry_after = self._faults.settings.retry_after
            return RateLimitedError(
                f"mock: more than {limit} concurrent requests", retry_after=retry_after
            )
        return None

    async def chat(self, ex: Exchange, body: bytes, headers: Mapping[str, str]) -> None:
        """``POST /v1/chat/completions`` or ``POST /v1/messages``."""
        try:
            req = ex.dialect.decode_request(body, headers)
            check_thinking_signatures(req)
            wanted = parse_directives(last_user_turn(req).text)
            asked = headers.get(FAULT_HEADER)
            source = FAULT_HEADER if asked is not None else "messages"
            fault = self._faults.decide(asked if asked is not None else wanted.fault, source)
            resp = build_reply(req, ex.seq, wanted)
        except GatewayError as err:
            await ex.error(err)
            return
        if fault is not None:
            await self._fault(ex, fault, req, resp)
        elif req.stream:
            await self._stream(ex, req, reply_events(resp))
        else:
            await self._pause(self._latency())
            await ex.whole(200, ex.dialect.encode_response(resp))

    async def count_tokens(
        self, ex: Exchange, dialect: AnthropicDialect, body: bytes, headers: Mapping[str, str]
    ) -> None:
        """``POST /v1/messages/count_tokens``; only the ``x-mock-fault`` header injects faults."""
        try:
            req = dialect.decode_count_tokens(body, headers)
            asked = headers.get(FAULT_HEADER)
            fault = None if asked is None else self._faults.decide(asked)
        except GatewayError as err:
            await ex.error(err)
            return
        answer = dialect.encode_count_tokens(estimate_input_tokens(req))
        if fault is None:
            await ex.whole(200, answer)
        elif not await self._status_fault(ex, fault):
            await self._whole_fault(ex, fault, answer)

    async def _fault(
        self, ex: Exchange, fault: FaultKind, req: ChatRequest, resp: ChatResponse
    ) -> None:
        if await self._status_fault(ex, fault):
            return
        if not req.stream or fault == "json":
            await self._whole_fault(ex, fault, ex.dialect.encode_response(resp))
            return
        encoder = ex.dialect.stream_encoder(req)
        events = reply_events(resp)
        head = len(events) // 2 if fault == "drop" else 2
        await ex.start(200, list(SSE_HEADERS))
        for event in events[:head]:
            await ex.body(encoder.feed(event), _MORE)
        if fault == "malformed":
            await ex.body(malformed_frame(req.dialect))
        # "drop": return without the final body message, so the server cuts the connection.

    async def _status_fault(self, ex: Exchange, fault: FaultKind) -> bool:
        """Answer an error-status or hang fault; False for the kinds that need a body."""
        err = fault_error(fault, self._faults.settings.retry_after)
        if err is not None:
            await ex.error(err)
            return True
        if fault == "hang":
            await wait_for_disconnect(ex.receive, HANG_SECONDS)
            return True
        return False

    async def _whole_fault(self, ex: Exchange, fault: FaultKind, answer: bytes) -> None:
        if fault == "json":
            await ex.whole(200, answer)
            return
        if fault == "malformed":
            await ex.whole(200, malformed_body(ex.dialect.name))
            return
        # "drop": promise the whole body, send half, return: the server closes the connection.
        length = str(len(answer)).encode()
        await ex.start(200, [JSON_TYPE, (b"content-length", length)])
        await ex.body(answer[: len(answer) // 2], _MORE)

    async def _stream(self, ex: Exchange, req: ChatRequest, events: list[StreamEvent]) -> None:
        encoder = ex.dialect.stream_encoder(req)
        await self._pause(self._first_token_delay())
        interval = self._settings.stream_interval_ms / 1000
        await ex.start(200, list(SSE_HEADERS))
        started = False
        for event in events:
            data = encoder.feed(event)
            if not data:
                continue
            if started and interval:
                await asyncio.sleep(interval)
            started = started or isinstance(event, _FIRST_TOKEN_EVENTS)
            await ex.body(data, _MORE)
        await ex.body(b"")

    def _latency(self) -> float:
        """Seconds before a whole answer: ``latency_ms`` ± uniform ``latency_jitter_ms``."""
        base = self._settings.latency_ms
        jitter = self._settings.latency_jitter_ms
        if jitter:
            base += self._rng.uniform(-jitter, jitter)
        return max(0.0, base) / 1000

    def _first_token_delay(self) -> float:
        """``first_token_ms`` when set, else the whole-answer latency."""
        if self._settings.first_token_ms:
            return self._settings.first_token_ms / 1000
        return self._latency()

    @staticmethod
    async def _pause(seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)
