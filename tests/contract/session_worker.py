"""One OS process appending turns to one shared Redis session (test_session_store.py)."""

from __future__ import annotations

import asyncio
import sys

from relaygate.core.types import Message, TextBlock
from relaygate.sessions import RedisSessionStore, SessionPolicy, Turn


async def main(url: str, prefix: str, worker: str, count: int) -> None:
    store = RedisSessionStore.from_url(url, timeout=5.0, prefix=prefix)
    policy = SessionPolicy(max_turns=1000, ttl_seconds=60)
    try:
        for i in range(count):
            messages = (
                Message("user", (TextBlock(f"{worker}-{i}"),)),
                Message("assistant", (TextBlock("ok"),)),
            )
            await store.append("key1", "shared", Turn.of(messages), policy)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
