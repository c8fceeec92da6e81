"""The transport seam: the only place upstream I/O happens.

Implementations map their own exceptions once, here at the edge: a timeout becomes
``UpstreamTimeoutError``, a refused or dropped connection a retryable ``UpstreamError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from relaygate.core.errors import UpstreamError, UpstreamTimeoutError
from relaygate.core.frozen import quick_init
from relaygate.providers.base import UpstreamRequest


@quick_init
@dataclass(slots=True, frozen=True)
class Timeouts:
    """Seconds: to connect, from sending to the response head (first byte), for the whole call,
    and at most between two body chunks (idle: a stream that stalls mid-way)."""

    connect: float = 10.0
    first_byte: float = 60.0
    total: float = 600.0
    idle: float = 60.0


NO_STREAM_DATA = "upstream sent no stream data before the first-byte timeout"
"""Why ``chunks()`` ended when the first-byte deadline passed before any body byte came."""


def idle_timeout(seconds: float) -> UpstreamTimeoutError:
    """What a body that stalled for the idle timeout raises."""
    return UpstreamTimeoutError(
        f"upstream stream stalled: no data for {seconds:g} s (idle timeout)"
    )


STREAM_TOTAL = "upstream stream exceeded the total timeout"


def wait_expired(
    first_byte: float, idle_by: float, deadline: float, idle: float, total: str = STREAM_TOTAL
) -> UpstreamTimeoutError:
    """What a body wait bounded by ``min(first_byte, idle_by, deadline)`` raises when it timed
    out, told by which bound was armed, not by the clock after: uvloop's timers may fire up to a
    millisecond before their time as ``loop.time()`` reads it. ``total`` is the text when the
    total deadline came first."""
    if first_byte <= idle_by and first_byte <= deadline:
        return UpstreamTimeoutError(NO_STREAM_DATA)
    if idle_by < deadline:
        return idle_timeout(idle)
    return UpstreamTimeoutError(total)


def connection_failed(exc: BaseException) -> UpstreamError:
    """What a refused, reset or dropped connection raises: retryable, on another attempt."""
    # The exception text can carry the upstream host but never credentials: headers are not in it.
    return UpstreamError(
        f"upstream connection failed ({type(exc).__name__})",
        status=502,
        retryable=True,
        kind="unavailable",
    )


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body (within the total timeout)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; raises ``UpstreamError`` if the connection breaks and
        ``UpstreamTimeoutError`` when no byte came for the idle timeout, or none at all by the
        first-byte deadline (``NO_STREAM_DATA``: a stream's head alone is not its first byte)."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    async def send(self, req: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse: ...

    async def close(self) -> None: ...
