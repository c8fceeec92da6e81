"""The Anthropic Messages dialect: what Claude Code and the ``anthropic`` SDKs speak."""

from __future__ import annotations

from collections.abc import Mapping

from relaygate.core.errors import GatewayError
from relaygate.core.types import ChatRequest, ChatResponse, DialectName
from relaygate.dialects.anthropic import decode, encode, errors
from relaygate.dialects.base import RequestHead


class AnthropicDialect:
    """Decodes ``/v1/messages`` and ``/v1/messages/count_tokens``; encodes answers and errors."""

    name: DialectName = "anthropic"

    def decode_request(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """Parse a Messages request; ``headers`` keys are expected in lower case."""
        return decode.decode_request(body, headers)

    def read_head(self, body: bytes) -> RequestHead:
        """Parse the body: a JSON object of sane depth naming a model."""
        return decode.read_head(body)

    def decode_head(self, head: RequestHead, headers: Mapping[str, str]) -> ChatRequest:
        """Validate the rest of a parsed Messages body."""
        return decode.decode_head(head, headers)

    def decode_count_tokens(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """Parse a count_tokens body: model, messages, optional system and tools."""
        return decode.decode_request(body, headers, count_only=True)

    def encode_response(self, resp: ChatResponse) -> bytes:
        """The JSON body of a whole answer."""
        return encode.encode_response(resp)

    def stream_encoder(self, req: ChatRequest) -> encode.AnthropicStreamEncoder:
        """A fresh SSE encoder for one streamed answer to ``req``."""
        return encode.AnthropicStreamEncoder(req.model)

    def encode_error(self, err: GatewayError, request_id: str) -> bytes:
        """The JSON body of an error answer."""
        return errors.encode_error(err, request_id)

    def encode_count_tokens(self, n: int) -> bytes:
        """``{"input_tokens": n}``."""
        return encode.encode_count_tokens(n)
