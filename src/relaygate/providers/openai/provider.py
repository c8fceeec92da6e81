"""``OpenAIProvider``: any upstream that speaks OpenAI Chat Completions (OpenAI, DeepSeek,
Gemini's compatible endpoint, vLLM, Ollama ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from relaygate.core.errors import InvalidRequestError, UpstreamError
from relaygate.core.types import ChatRequest, ChatResponse, Usage
from relaygate.providers.base import UpstreamRequest, UpstreamTarget
from relaygate.providers.openai.errors import classify_error
from relaygate.providers.openai.request import build_request
from relaygate.providers.openai.response import answer_usage, parse_response
from relaygate.providers.openai.stream import OpenAIStreamParser


class OpenAIProvider:
    """Pure adapter for the ``/chat/completions`` wire format; no I/O, no clock."""

    dialect: Literal["openai"] = "openai"

    def build_request(
        self, req: ChatRequest, target: UpstreamTarget, request_id: str
    ) -> UpstreamRequest:
        """``POST {base_url}/chat/completions``; ``base_url`` includes ``/v1``."""
        return build_request(req, target, request_id)

    def parse_response(self, body: bytes) -> ChatResponse:
        """A ``chat.completion`` body as a ``ChatResponse``; malformed: a retryable 502."""
        return parse_response(body)

    def answer_usage(self, body: bytes) -> Usage:
        """``parse_response(body).usage`` without the answer; raises as it would."""
        return answer_usage(body)

    def stream_parser(self) -> OpenAIStreamParser:
        """A fresh parser for one streamed answer."""
        return OpenAIStreamParser()

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """Map a non-2xx reply to an ``UpstreamError`` (status, kind, retryable, retry_after)."""
        return classify_error(status, headers, body)

    def build_count_tokens(
        self, req: ChatRequest, target: UpstreamTarget, request_id: str
    ) -> UpstreamRequest | None:
        """Chat Completions has no token-counting endpoint: always None."""
        return None

    def parse_count_tokens(self, body: bytes) -> int:
        """Unreachable, as ``build_count_tokens`` builds nothing; refuses rather than guess 0."""
        raise InvalidRequestError("token counting is not supported by OpenAI-compatible upstreams")
