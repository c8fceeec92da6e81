"""Streaming load: N streamed chat completions, C at a time, timing every SSE event.

Time to first token (TTFT) is measured from just before the request is sent to the arrival of the
first ``data:`` line carrying non-empty content (the OpenAI role-only opening chunk does not
count); the first event of any kind and the whole stream are timed too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from bench.stats import summarize_ms

_EMPTY_CONTENT = b'"content":""'
_CONTENT = b'"content":"'


@dataclass(frozen=True, slots=True)
class StreamSample:
    """One stream: seconds to the first event, the first content, the end; events seen."""

    first_event: float
    first_token: float
    total: float
    events: int
    ok: bool


@dataclass(frozen=True, slots=True)
class StreamsResult:
    """All samples of one streaming run."""

    samples: list[StreamSample]

    @property
    def errors(self) -> int:
        """Streams that failed, were not 200, carried no content, or did not end with [DONE]."""
        return sum(1 for s in self.samples if not s.ok)

    def ttft_ms(self) -> dict[str, float]:
        """Percentiles of the time to first content event."""
        return summarize_ms(s.first_token for s in self.samples if s.ok)

    def total_ms(self) -> dict[str, float]:
        """Percentiles of the whole stream's duration."""
        return summarize_ms(s.total for s in self.samples if s.ok)

    def events_per_stream(self) -> float:
        """Mean number of SSE ``data:`` events per good stream."""
        good = [s.events for s in self.samples if s.ok]
        return sum(good) / len(good) if good else 0.0


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> StreamSample:
    start = time.perf_counter()
    first_event = first_token = 0.0
    events, done = 0, False
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            ok_status = resp.status == 200
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                now = time.perf_counter() - start
                events += 1
                if events == 1:
                    first_event = now
                if not first_token and _CONTENT in line and _EMPTY_CONTENT not in line:
                    first_token = now
                done = line.startswith(b"data: [DONE]")
    except (aiohttp.ClientError, TimeoutError):
        ok_status = False
    total = time.perf_counter() - start
    return StreamSample(
        first_event, first_token, total, events, ok_status and done and first_token > 0
    )


async def run_streams(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    count: int,
    concurrency: int,
    stagger: float = 0.0,
) -> StreamsResult:
    """Run ``count`` streams with ``concurrency`` workers, each one stream after another.

    Worker ``k`` starts ``k * stagger`` seconds late. With equal-length streams, workers that
    start together stay in lock-step, and every first token then arrives in a burst of
    ``concurrency`` at once: that measures queueing behind the burst, not per-stream overhead.
    """
    samples: list[StreamSample] = []
    remaining = iter(range(count))

    async def worker(delay: float) -> None:
        await asyncio.sleep(delay)
        for _ in remaining:
            samples.append(await _one(session, url, body, headers))

    await asyncio.gather(*(worker(k * stagger) for k in range(concurrency)))
    return StreamsResult(samples)
