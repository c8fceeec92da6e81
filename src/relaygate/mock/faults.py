"""Injected faults: which request fails, and how each kind of failure looks on the wire.

A request fails when it asks to (header ``x-mock-fault: KIND`` or prompt directive
``mock:fault KIND``) or when the server's plan says so: the first ``first_n`` planned requests, then
a ``rate`` fraction drawn from a seeded random generator.
"""

from __future__ import annotations

import random
from typing import Final, Literal, cast

from relaygate.core.errors import (
    GatewayError,
    InternalError,
    InvalidRequestError,
    RateLimitedError,
    UpstreamError,
)
from relaygate.core.types import DialectName
from relaygate.settings.model import MockFaultSettings

# "json": answer a stream request with the whole JSON answer, as upstreams that ignore
# ``stream`` do.
FaultKind = Literal["429", "500", "529", "hang", "drop", "malformed", "json"]
FAULT_KINDS: Final = frozenset({"429", "500", "529", "hang", "drop", "malformed", "json"})
FAULT_HEADER: Final = "x-mock-fault"
HANG_SECONDS: Final = 3600.0

# Bodies cut off mid-value: a client's JSON parser must fail on them.
_MALFORMED_BODY: Final[dict[DialectName, bytes]] = {
    "openai": b'{"id":"chatcmpl-mock-malformed","object":"chat.completion","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"cut off',
    "anthropic": b'{"id":"msg_mock_malformed","type":"message","role":"assistant","content":'
    b'[{"type":"text","text":"cut off',
}
_MALFORMED_FRAME: Final[dict[DialectName, bytes]] = {
    "openai": b'data: {"id":"chatcmpl-mock-malformed","object":"chat.completion.chunk",'
    b'"choices":[{"index":0,"delta":{"content":"cut off\n\n',
    "anthropic": b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"cut off\n\n',
}


def parse_fault_kind(value: str, source: str) -> FaultKind:
    """``value`` as a fault kind; ``source`` names where it came from for the error message."""
    if value not in FAULT_KINDS:
        raise InvalidRequestError(
            f"{source}: unknown mock fault '{value[:20]}'; expected one of "
            + ", ".join(sorted(FAULT_KINDS)),
            param=source,
        )
    return cast(FaultKind, value)


class FaultPlan:
    """The server-wide fault plan; requests that name their own fault do not count toward it."""

    __slots__ = ("_planned", "_rng", "_settings")

    def __init__(self, settings: MockFaultSettings, rng: random.Random) -> None:
        self._settings = settings
        self._rng = rng
        self._planned = 0

    @property
    def settings(self) -> MockFaultSettings:
        return self._settings

    def replace(self, settings: MockFaultSettings) -> None:
        """Switch to a new plan; its ``first_n`` counts from the next request."""
        self._settings = settings
        self._planned = 0

    def decide(self, requested: str | None, source: str = FAULT_HEADER) -> FaultKind | None:
        """The fault this request gets, if any; ``requested`` is the caller's own ask."""
        if requested is not None:
            return parse_fault_kind(requested, source)
        settings = self._settings
        if settings.kind == "none":
            return None
        self._planned += 1
        if self._planned <= settings.first_n:
            return settings.kind
        if settings.rate > 0 and self._rng.random() < settings.rate:
            return settings.kind
        return None


def fault_error(kind: FaultKind, retry_after: float) -> GatewayError | None:
    """The error a status fault answers with; ``None`` for the kinds that are not an error reply."""
    if kind == "429":
        return RateLimitedError("mock: injected rate limit", retry_after=retry_after)
    if kind == "500":
        return InternalError("mock: injected server error")
    if kind == "529":
        return UpstreamError("mock: injected overload", status=529, kind="overloaded")
    return None


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds where possible (what providers send), else decimal."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def malformed_body(dialect: DialectName) -> bytes:
    """A 200 body that is not valid JSON."""
    return _MALFORMED_BODY[dialect]


def malformed_frame(dialect: DialectName) -> bytes:
    """An SSE frame whose data is not valid JSON."""
    return _MALFORMED_FRAME[dialect]
