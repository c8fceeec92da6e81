"""The Anthropic Messages upstream adapter: pure build and parse, no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from relaygate.core.errors import UpstreamError
from relaygate.core.types import ChatRequest, ChatResponse, DialectName, Usage
from relaygate.providers.anthropic import errors, request, response
from relaygate.providers.anthropic.stream import AnthropicStreamParser
from relaygate.providers.base import UpstreamRequest, UpstreamTarget


class AnthropicProvider:
    """Speaks ``/v1/messages``; same-dialect requests are relayed with only ``model`` replaced."""

    dialect: DialectName = "anthropic"

    def build_request(
        self, req: ChatRequest, target: UpstreamTarget, request_id: str
    ) -> UpstreamRequest:
        """The upstream ``/v1/messages`` request for ``req``."""
        return request.build_request(req, target, request_id)

    def parse_response(self, body: bytes) -> ChatResponse:
        """A whole 2xx answer; malformed bodies raise a retryable 502."""
        return response.parse_response(body)

    def answer_usage(self, body: bytes) -> Usage:
        """``parse_response(body).usage`` without the answer; raises as it would."""
        return response.answer_usage(body)

    def stream_parser(self) -> AnthropicStreamParser:
        """A fresh parser for one upstream stream."""
        return AnthropicStreamParser()

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """The ``UpstreamError`` for an error answer."""
        return errors.classify_error(status, headers, body)

    def build_count_tokens(
        self, req: ChatRequest, target: UpstreamTarget, request_id: str
    ) -> UpstreamRequest:
        """The upstream ``/v1/messages/count_tokens`` request for ``req``."""
        return request.build_count_tokens(req, target, request_id)

    def parse_count_tokens(self, body: bytes) -> int:
        """The count from a 2xx count_tokens answer."""
        return response.parse_count_tokens(body)
