"""``OpenAIDialect``: the OpenAI Chat Completions wire format on the caller's side."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Literal

from relaygate.core.errors import GatewayError
from relaygate.core.types import ChatRequest, ChatResponse
from relaygate.dialects.base import RequestHead
from relaygate.dialects.openai.decode import decode_head, decode_request, read_head
from relaygate.dialects.openai.encode import OpenAIStreamEncoder, encode_response
from relaygate.dialects.openai.errors import encode_error


class OpenAIDialect:
    """Decodes ``POST /v1/chat/completions`` bodies and encodes answers and errors.

    ``clock`` supplies the ``created`` timestamp (seconds); tests pass a fixed one.
    """

    name: Literal["openai"] = "openai"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def decode_request(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """Parse and validate a chat request; raises ``InvalidRequestError`` naming the field."""
        return decode_request(body)

    def read_head(self, body: bytes) -> RequestHead:
        """Parse the body: a JSON object of sane depth naming a model."""
        return read_head(body)

    def decode_head(self, head: RequestHead, headers: Mapping[str, str]) -> ChatRequest:
        """Validate the rest of a parsed body."""
        return decode_head(head)

    def encode_response(self, resp: ChatResponse) -> bytes:
        """A ``chat.completion`` JSON body."""
        return encode_response(resp, int(self._clock()))

    def stream_encoder(self, req: ChatRequest) -> OpenAIStreamEncoder:
        """A fresh encoder for one streamed answer to ``req``."""
        return OpenAIStreamEncoder(req, int(self._clock()))

    def encode_error(self, err: GatewayError, request_id: str) -> bytes:
        """The OpenAI error JSON body; the HTTP status is ``err.status``."""
        return encode_error(err, request_id)
