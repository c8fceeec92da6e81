"""The dialect seam: how callers speak to the gateway (OpenAI or Anthropic wire format)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from relaygate.core.errors import GatewayError
from relaygate.core.events import StreamEvent
from relaygate.core.frozen import quick_init
from relaygate.core.types import ChatRequest, ChatResponse, DialectName, JSONObject


@quick_init
@dataclass(frozen=True, slots=True)
class RequestHead:
    """A chat body parsed but not yet decoded: enough to route the request, record it and refuse
    it while its model is busy, without the cost of the full decode.

    ``stream`` and ``user`` are what the body says when it says it validly (else False and None);
    the full decode refuses an invalid value later.
    """

    model: str
    stream: bool
    user: str | None
    raw: JSONObject


class StreamEncoder(Protocol):
    """Turns neutral events into the dialect's SSE bytes; a fresh instance per stream."""

    def feed(self, event: StreamEvent) -> bytes: ...


class Dialect(Protocol):
    @property
    def name(self) -> DialectName: ...

    def decode_request(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """Parse and validate a chat request; raises ``InvalidRequestError`` naming the field.
        The same as ``decode_head(read_head(body), headers)``."""
        ...

    def read_head(self, body: bytes) -> RequestHead:
        """Parse the body: a JSON object of sane depth naming a model (else a 400)."""
        ...

    def decode_head(self, head: RequestHead, headers: Mapping[str, str]) -> ChatRequest:
        """Validate the rest of a parsed body into the neutral request."""
        ...

    def encode_response(self, resp: ChatResponse) -> bytes: ...

    def stream_encoder(self, req: ChatRequest) -> StreamEncoder: ...

    def encode_error(self, err: GatewayError, request_id: str) -> bytes: ...
