"""The pooled aiohttp transport: one long-lived session, keep-alive connections to every upstream.

aiohttp's client is used rather than httpx because it costs roughly a tenth of the CPU per request
at high concurrency (shared/reference/python-relay-floor.md, encode/httpx#3215).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp

from relaygate.core.errors import UpstreamTimeoutError
from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import Timeouts, connection_failed, wait_expired

MAX_CACHED_CONNECT_TIMEOUTS = 16
_NEVER = float("inf")


class HttpUpstreamResponse:
    __slots__ = ("_deadline", "_first_byte", "_idle", "_response", "headers", "status")

    def __init__(
        self, response: aiohttp.ClientResponse, deadline: float, first_byte: float, idle: float
    ) -> None:
        self._response = response
        self._deadline = deadline
        self._first_byte = first_byte
        self._idle = idle
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout_at(self._deadline):
                return await self._response.read()
        except TimeoutError:
            raise UpstreamTimeoutError("upstream did not finish its answer in time") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise connection_failed(exc) from None
        finally:
            self._response.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        loop = asyncio.get_running_loop()
        idle_by = 0.0
        first_byte = self._first_byte  # until the first chunk: the stream's first data
        try:
            while True:
                idle_by = loop.time() + self._idle
                async with asyncio.timeout_at(min(first_byte, self._deadline, idle_by)):
                    chunk = await content.readany()
                if not chunk:
                    return
                first_byte = _NEVER
                yield chunk
        except TimeoutError:
            raise wait_expired(first_byte, idle_by, self._deadline, self._idle) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise connection_failed(exc) from None

    def close(self) -> None:
        self._response.close()


class HttpTransport:
    """Sends upstream requests over HTTP(S) with connect / first-byte / total timeouts."""

    def __init__(self, *, max_connections: int = 0, keepalive_seconds: float = 60.0) -> None:
        self._max_connections = max_connections
        self._keepalive = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        # Built once per connect timeout in use (the configured ones; a deadline can clip one
        # to any value, hence the bound): building the attrs object cost ~1 us a request.
        self._connect_timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=self._keepalive,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def send(self, req: UpstreamRequest, timeouts: Timeouts) -> HttpUpstreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        first_byte = min(deadline, loop.time() + timeouts.first_byte)
        try:
            async with asyncio.timeout_at(first_byte):
                response = await self._client().request(
                    req.method,
                    req.url,
                    data=req.body,
                    headers=dict(req.headers),
                    timeout=self._connect_timeout(timeouts.connect),
                )
        except TimeoutError:
            raise UpstreamTimeoutError(
                "upstream did not answer before the first-byte timeout"
            ) from None
        except aiohttp.ServerTimeoutError:
            raise UpstreamTimeoutError("could not connect to the upstream in time") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise connection_failed(exc) from None
        return HttpUpstreamResponse(response, deadline, first_byte, timeouts.idle)

    def _connect_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._connect_timeouts.get(seconds)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=seconds)
            if len(self._connect_timeouts) < MAX_CACHED_CONNECT_TIMEOUTS:
                self._connect_timeouts[seconds] = timeout
        return timeout

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
