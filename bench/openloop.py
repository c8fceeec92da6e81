"""Open-loop load: requests leave at a constant rate, whatever the server's answers do.

Request ``i`` is scheduled at ``start + i / rate``; its latency is measured from that scheduled
time, not from when it was actually sent, so a server (or a generator) that falls behind shows up
in the latency instead of silently lowering the offered rate (no coordinated omission). The
connection pool is unbounded, so a slow answer never holds back the next request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from bench.stats import summarize_ms

_TIMEOUT = aiohttp.ClientTimeout(total=10.0)


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: seconds from its scheduled time to the start of sending, and to the answer."""

    send_lag: float
    latency: float
    status: int


@dataclass(frozen=True, slots=True)
class OpenLoopResult:
    """The samples of one open-loop run and what was offered."""

    rate: float
    seconds: float
    samples: list[Sample]

    @property
    def errors(self) -> int:
        """Requests that failed or were not answered 200."""
        return sum(1 for s in self.samples if s.status != 200)

    def latency_ms(self) -> dict[str, float]:
        """Percentiles of latency from the scheduled send time, for the 200 answers."""
        return summarize_ms(s.latency for s in self.samples if s.status == 200)

    def send_lag_ms(self) -> dict[str, float]:
        """How late the generator itself started each request (its own health)."""
        return summarize_ms(s.send_lag for s in self.samples)


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], due: float
) -> Sample:
    sent = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    return Sample(sent - due, time.perf_counter() - due, status)


async def run_open_loop(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    rate: float,
    seconds: float,
) -> OpenLoopResult:
    """Offer ``rate`` requests per second for ``seconds`` and wait for every answer."""
    count = max(1, int(rate * seconds))
    start = time.perf_counter() + 0.01
    tasks: list[asyncio.Task[Sample]] = []
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(session, url, body, headers, due)))
    samples = list(await asyncio.gather(*tasks))
    return OpenLoopResult(rate, seconds, samples)


def new_session() -> aiohttp.ClientSession:
    """A client session with an unbounded keep-alive pool (open loop must never queue here)."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, enable_cleanup_closed=False)
    return aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT, auto_decompress=False)
