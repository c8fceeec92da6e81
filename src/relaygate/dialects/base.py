"""The dialect seam: how callers speak to the gateway (OpenAI or Anthropic wire format)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from relaygate.core.errors import GatewayError
from relaygate.core.events import StreamEvent
from relaygate.core.types import ChatRequest, ChatResponse, DialectName


class StreamEncoder(Protocol):
    """Turns neutral events into the dialect's SSE bytes; a fresh instance per stream."""

    def feed(self, event: StreamEvent) -> bytes: ...


class Dialect(Protocol):
    @property
    def name(self) -> DialectName: ...

    def decode_request(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """Parse and validate a chat request; raises ``InvalidRequestError`` naming the field."""
        ...

    def encode_response(self, resp: ChatResponse) -> bytes: ...

    def stream_encoder(self, req: ChatRequest) -> StreamEncoder: ...

    def encode_error(self, err: GatewayError, request_id: str) -> bytes: ...
