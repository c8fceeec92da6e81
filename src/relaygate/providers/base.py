"""The provider seam: pure adapters between the neutral model and one upstream wire format.

Providers do no I/O and read no clock; ``relaygate.transport`` sends what they build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from relaygate.core.errors import UpstreamError
from relaygate.core.events import StreamEvent
from relaygate.core.sse import SSEFrame
from relaygate.core.types import ChatRequest, ChatResponse, DialectName, Usage


@dataclass(slots=True, frozen=True)
class UpstreamTarget:
    """Where and as whom one deployment is reached, resolved from settings at start-up."""

    base_url: str
    model: str
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    default_max_tokens: int = 4096
    # Send a user message's text blocks as one string, for servers that reject content arrays.
    flatten_content: bool = False


# Not frozen: one is built per attempt on the request path, and even ``quick_init``'s frozen
# construction (two ``__class__`` switches) costs four times a plain slots ``__init__`` of its
# five fields. Nothing changes one after it is built (a retry builds its own).
@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    stream: bool = False


class StreamParser(Protocol):
    """Turns one upstream SSE stream into neutral events; a fresh instance per stream."""

    def feed(self, frame: SSEFrame) -> list[StreamEvent]: ...

    def finish(self) -> list[StreamEvent]:
        """Called at end of input; a stream that ended early yields a ``StreamError``."""
        ...

    @property
    def usage(self) -> Usage:
        """Usage seen so far (what to bill if the stream is cut short)."""
        ...


class Provider(Protocol):
    """One upstream wire format. ``dialect`` names the wire it speaks, so a caller of the same
    dialect can be relayed without re-encoding."""

    @property
    def dialect(self) -> DialectName: ...

    def build_request(
        self, req: ChatRequest, target: UpstreamTarget, request_id: str
    ) -> UpstreamRequest: ...

    def parse_response(self, body: bytes) -> ChatResponse: ...

    def answer_usage(self, body: bytes) -> Usage:
        """``parse_response(body).usage``, raising as it would (a malformed answer is a
        retryable 502), without building the answer: all a same-dialect relay needs."""
        ...

    def stream_parser(self) -> StreamParser: ...

    def classify_error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError: ...

    def build_count_tokens(
        self, req: ChatRequest, target: UpstreamTarget, request_id: str
    ) -> UpstreamRequest | None:
        """A request that counts the prompt's tokens upstream, or None where the wire cannot."""
        ...

    def parse_count_tokens(self, body: bytes) -> int: ...


class UpstreamUrls:
    """``{base_url}{path}`` (any trailing ``/`` of the base dropped) for one path, worked out
    once per base URL: a deployment's base URL is settings, and this runs once per attempt."""

    __slots__ = ("_path", "_urls")

    KEPT = 1024

    def __init__(self, path: str) -> None:
        self._path = path
        self._urls: dict[str, str] = {}

    def of(self, base_url: str) -> str:
        url = self._urls.get(base_url)
        if url is None:
            url = base_url.rstrip("/") + self._path
            if len(self._urls) < self.KEPT:
                self._urls[base_url] = url
        return url
