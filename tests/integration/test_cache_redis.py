"""The Redis backend on the request path (issue 11): processes share answers through it, and a
Redis that is down or holds a corrupt entry is a miss, never an error."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from tests.integration.cache_support import CONFIG, Gateway, openai_chat, start_gateway

from relaygate.cache import cache_key, decode_entry
from relaygate.cache.redis import redis_name


def with_redis(url: str) -> str:
    return f"redis_url: {url}\n" + CONFIG.replace(
        "  enabled: true", "  enabled: true\n  backend: redis"
    )


async def close(*gateways: Gateway) -> None:
    for gw in gateways:
        await gw.client.aclose()
        await gw.services.close()


@pytest.mark.redis
async def test_two_processes_share_answers_through_redis(tmp_path: Path, redis_url: str) -> None:
    one = await start_gateway(tmp_path / "one", with_redis(redis_url))
    two = await start_gateway(tmp_path / "two", with_redis(redis_url))
    try:
        assert one.services.cache is not None and one.services.cache.backend.name == "redis"
        # Both processes' keys are named "default" (as one shared key database would have it).
        miss = await one.openai(openai_chat("shared"))
        hit = await two.openai(openai_chat("shared"))
        assert miss.headers["x-relaygate-cache"] == "miss"
        assert hit.headers["x-relaygate-cache"] == "hit"
        assert hit.json()["choices"] == miss.json()["choices"]
        assert two.upstream_calls("gpt") == 0
    finally:
        await close(one, two)


@pytest.mark.redis
async def test_a_corrupt_entry_is_a_miss(tmp_path: Path, redis_url: str) -> None:
    gw = await start_gateway(tmp_path, with_redis(redis_url))
    client = aioredis.Redis.from_url(redis_url)
    try:
        body = openai_chat("corrupt")
        req = gw.services.openai.decode_request(orjson.dumps(body), {})
        key = cache_key(req, "gpt", "default")
        await client.set(redis_name(key), b"\x00" * 8 + b"{not an entry")
        answer = await gw.openai(body)
        assert answer.status_code == 200 and answer.headers["x-relaygate-cache"] == "miss"
        stored = await client.get(redis_name(key))  # the same name: overwritten by a good entry
        assert isinstance(stored, bytes) and decode_entry(stored[8:]) is not None
        again = await gw.openai(body)
        assert again.headers["x-relaygate-cache"] == "hit"  # the miss stored a good entry
    finally:
        await client.aclose()
        await close(gw)


async def test_redis_down_is_a_miss_never_an_error(tmp_path: Path) -> None:
    config = CONFIG.replace("  enabled: true", "  enabled: true\n  backend: redis")
    config = "redis_url: redis://127.0.0.1:1/0\n" + config
    gw = await start_gateway(tmp_path, config)
    try:
        for _ in range(2):
            answer = await gw.openai(openai_chat("no redis"))
            assert answer.status_code == 200
            assert answer.headers["x-relaygate-cache"] == "miss"
        assert gw.upstream_calls("gpt") == 2
    finally:
        await close(gw)
