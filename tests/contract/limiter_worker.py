"""One of the processes of the shared-limit contract test: hammer one Redis bucket.

Usage: limiter_worker.py REDIS_URL PREFIX RATE BURST SECONDS. Connects, prints "ready", waits for
a line on stdin (sent once every worker is ready and the test has drained the bucket), asks for
one token as fast as it can for SECONDS, then prints "<admitted> <attempts>".
"""

from __future__ import annotations

import asyncio
import sys
import time

from relaygate.limits import BucketAsk, RedisLimiter

BUCKET = "shared:rps"


async def hammer(url: str, prefix: str, rate: float, burst: float, seconds: float) -> None:
    limiter = RedisLimiter.from_url(url, timeout=2.0, prefix=prefix)
    await limiter.start()
    bucket = BucketAsk.token_bucket(BUCKET, rate, burst)
    print("ready", flush=True)
    sys.stdin.readline()
    admitted = attempts = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        attempts += 1
        admitted += (await limiter.acquire([bucket])).admitted
    await limiter.close()
    print(admitted, attempts, flush=True)


if __name__ == "__main__":
    url, prefix, rate, burst, seconds = sys.argv[1:6]
    asyncio.run(hammer(url, prefix, float(rate), float(burst), float(seconds)))
