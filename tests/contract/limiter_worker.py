"""One of the processes of the shared-limit contract test: hammer one Redis bucket.

Usage: limiter_worker.py REDIS_URL PREFIX RATE BURST START_EPOCH SECONDS. Waits until
START_EPOCH, asks for one token as fast as it can for SECONDS, then prints
"<admitted> <attempts> <first ask epoch> <last answer epoch>".
"""

from __future__ import annotations

import asyncio
import sys
import time

from relaygate.limits import BucketAsk, RedisLimiter


async def hammer(
    url: str, prefix: str, rate: float, burst: float, start: float, seconds: float
) -> None:
    limiter = RedisLimiter.from_url(url, timeout=2.0, prefix=prefix)
    await limiter.start()
    bucket = BucketAsk.token_bucket("shared:rps", rate, burst)
    await asyncio.sleep(max(0.0, start - time.time()))
    admitted = attempts = 0
    first = last = time.time()
    while last < start + seconds:
        attempts += 1
        admitted += (await limiter.acquire([bucket])).admitted
        last = time.time()
    await limiter.close()
    print(admitted, attempts, repr(first), repr(last), flush=True)


if __name__ == "__main__":
    url, prefix, rate, burst, start, seconds = sys.argv[1:7]
    asyncio.run(hammer(url, prefix, float(rate), float(burst), float(start), float(seconds)))
