"""A whole JSON answer to a stream request, as the stream the caller asked for.

Some upstreams ignore ``stream: true`` and answer ``application/json``. The body is parsed with the
provider's whole-answer parser and its events go through the caller's stream encoder (same-dialect
too: the upstream's bytes are not a stream and cannot be relayed as one). A JSON error body sent
with status 200 becomes the error it reports, as the same object inside a stream would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from relaygate.core.errors import UpstreamError
from relaygate.core.events import StreamError, StreamEvent, answer_events
from relaygate.core.sse import SSEFrame
from relaygate.core.types import Usage
from relaygate.providers.base import Provider


def is_json_answer(headers: Mapping[str, str], first_chunk: bytes) -> bool:
    """Whether a 2xx reply to a stream request is a whole JSON body rather than SSE."""
    kind = _content_type(headers)
    if "json" in kind:
        return True
    # No usable content type: a body opening with "{" cannot be SSE (frames start with a field).
    return "event-stream" not in kind and first_chunk.lstrip().startswith(b"{")


async def read_rest(first_chunk: bytes, chunks: AsyncIterator[bytes]) -> bytes:
    """The whole body, from its first chunk and the ones still to come."""
    parts = [first_chunk]
    async for chunk in chunks:
        parts.append(chunk)
    return b"".join(parts)


def whole_answer_events(provider: Provider, body: bytes) -> tuple[list[StreamEvent], Usage]:
    """The answer's stream events and usage; raises the ``UpstreamError`` an error body reports."""
    try:
        answer = provider.parse_response(body)
    except UpstreamError as malformed:
        raise _reported_error(provider, body) or malformed from None
    return answer_events(answer), answer.usage


class AnsweredParser:
    """The stream parser of an answer already parsed whole: nothing more to read."""

    __slots__ = ("_usage",)

    def __init__(self, usage: Usage) -> None:
        self._usage = usage

    @property
    def usage(self) -> Usage:
        return self._usage

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        return []

    def finish(self) -> list[StreamEvent]:
        return []


def _reported_error(provider: Provider, body: bytes) -> UpstreamError | None:
    # The provider's stream parser already knows its wire's error objects and how to classify
    # them when they come with status 200.
    frame = SSEFrame(None, body.decode("utf-8", "replace"))
    for event in provider.stream_parser().feed(frame):
        if isinstance(event, StreamError) and event.from_upstream:
            err = event.error
            return err if isinstance(err, UpstreamError) else UpstreamError(err.message)
    return None


def _content_type(headers: Mapping[str, str]) -> str:
    value = headers.get("content-type")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return value.lower()
