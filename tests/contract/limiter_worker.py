"""One of the processes of the shared-limit contract test: hammer one Redis bucket.

Usage: limiter_worker.py REDIS_URL PREFIX RATE BURST SECONDS. Connects, prints "ready", reads
the start epoch from stdin (sent once every worker is ready), waits until then, asks for one
token as fast as it can for SECONDS, then prints
"<admitted> <attempts> <first ask epoch> <last answer epoch>".
"""

from __future__ import annotations

import asyncio
import sys
import time

from relaygate.limits import BucketAsk, RedisLimiter


async def hammer(url: str, prefix: str, rate: float, burst: float, seconds: float) -> None:
    limiter = RedisLimiter.from_url(url, timeout=2.0, prefix=prefix)
    await limiter.start()
    bucket = BucketAsk.token_bucket("shared:rps", rate, burst)
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    await asyncio.sleep(max(0.0, start - time.time()))  # the common start: all ask at once
    admitted = attempts = 0
    first = last = time.time()
    while last < start + seconds:
        attempts += 1
        admitted += (await limiter.acquire([bucket])).admitted
        last = time.time()
    await limiter.close()
    print(admitted, attempts, repr(first), repr(last), flush=True)


if __name__ == "__main__":
    url, prefix, rate, burst, seconds = sys.argv[1:6]
    asyncio.run(hammer(url, prefix, float(rate), float(burst), float(seconds)))
