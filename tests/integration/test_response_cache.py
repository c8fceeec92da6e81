"""The response cache on the request path (issue 11): hits and misses in both dialects, streamed
and whole, translated or not; what is cacheable; bad headers; ledger rows and metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.integration.cache_support import (
    CHAT,
    CONFIG,
    MESSAGES,
    Gateway,
    anthropic_chat,
    anthropic_stream_text,
    openai_chat,
    openai_stream_text,
    start_gateway,
)

from relaygate.auth import new_api_key
from relaygate.core.context import RequestContext
from relaygate.dialects.base import RequestHead
from relaygate.dialects.openai import OpenAIDialect
from relaygate.observability.logging import request_fields
from relaygate.store.records import KeySpec


async def test_a_repeated_request_is_a_hit_with_the_same_answer(cache_gateway: Gateway) -> None:
    first = await cache_gateway.openai(openai_chat())
    again = await cache_gateway.client.post(
        CHAT,
        json=openai_chat(user="someone", metadata={"a": "b"}),
        headers=cache_gateway.openai_headers(),
    )
    assert first.status_code == again.status_code == 200
    assert first.headers["x-relaygate-cache"] == "miss"
    assert again.headers["x-relaygate-cache"] == "hit"
    assert again.json()["choices"] == first.json()["choices"]
    assert cache_gateway.upstream_calls("gpt") == 1


async def test_a_stream_serves_a_whole_request_and_the_reverse_across_dialects(
    cache_gateway: Gateway,
) -> None:
    streamed = await cache_gateway.client.post(
        MESSAGES,
        json=anthropic_chat("one", model="gpt", stream=True),
        headers=cache_gateway.anthropic_headers(),
    )
    assert streamed.headers["x-relaygate-cache"] == "miss"
    whole = await cache_gateway.anthropic(anthropic_chat("one", model="gpt"))
    assert whole.headers["x-relaygate-cache"] == "hit"
    text = anthropic_stream_text(streamed.content)
    assert text and whole.json()["content"][0]["text"] == text
    # The reverse: a whole answer first, then a stream of it, same dialect.
    first = await cache_gateway.openai(openai_chat("two"))
    replayed = await cache_gateway.openai(openai_chat("two", stream=True))
    assert replayed.headers["x-relaygate-cache"] == "hit"
    assert replayed.headers["content-type"].startswith("text/event-stream")
    assert openai_stream_text(replayed.content) == first.json()["choices"][0]["message"]["content"]
    assert replayed.content.rstrip().endswith(b"data: [DONE]")
    assert cache_gateway.upstream_calls("gpt") == 2


async def test_anthropic_stream_replays_with_the_same_events(cache_gateway: Gateway) -> None:
    body = anthropic_chat("three", stream=True)
    first = await cache_gateway.anthropic(body)
    again = await cache_gateway.anthropic(body)
    assert again.headers["x-relaygate-cache"] == "hit"

    def event_types(raw: bytes) -> list[str]:
        kinds = [line[7:] for line in raw.split(b"\n") if line.startswith(b"event: ")]
        return [k.decode() for k in kinds if k != b"ping"]

    def collapsed(kinds: list[str]) -> list[str]:
        return [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]

    assert collapsed(event_types(again.content)) == collapsed(event_types(first.content))
    assert anthropic_stream_text(again.content) == anthropic_stream_text(first.content)
    assert cache_gateway.upstream_calls("claude") == 1


async def test_a_replayed_stream_sends_its_first_event_in_the_pass_of_its_head(
    cache_gateway: Gateway,
) -> None:
    """The replay's pump runs in the request's task (no pump task to schedule first), so the
    first event leaves with the head (one socket write, ``relaygate.web.protocol``)."""
    body = openai_chat("three", stream=True)
    await cache_gateway.openai(body)
    passes = 0

    async def count_passes() -> None:
        nonlocal passes
        while True:
            await asyncio.sleep(0)
            passes += 1

    sent: list[tuple[str, int]] = []
    app = cache_gateway.app

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        async def send_watched(message: Any) -> None:
            sent.append((message["type"], passes))
            await send(message)

        await app(scope, receive, send_watched)

    ticker = asyncio.create_task(count_passes())
    while passes < 2:  # ticking
        await asyncio.sleep(0)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=watched), base_url="http://gw"
        ) as client:
            again = await client.post(CHAT, json=body, headers=cache_gateway.openai_headers())
    finally:
        ticker.cancel()
    assert again.headers["x-relaygate-cache"] == "hit"
    (start_kind, start_pass), (first_kind, first_pass) = sent[:2]
    assert (start_kind, first_kind) == ("http.response.start", "http.response.body")
    assert first_pass == start_pass


async def test_alias_and_key_order_share_an_entry(cache_gateway: Gateway) -> None:
    await cache_gateway.openai(openai_chat("four"))
    reordered = dict(reversed(list(openai_chat("four", model="gpt-alias").items())))
    again = await cache_gateway.openai(reordered)
    assert again.headers["x-relaygate-cache"] == "hit"


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each OpenAI body the gateway parses ("head") and decodes ("decode")."""
    seen: list[str] = []
    read_head, decode_head = OpenAIDialect.read_head, OpenAIDialect.decode_head

    def counting_read(self: OpenAIDialect, body: bytes) -> RequestHead:
        seen.append("head")
        return read_head(self, body)

    def counting_decode(self: OpenAIDialect, head: RequestHead, headers: Any) -> Any:
        seen.append("decode")
        return decode_head(self, head, headers)

    monkeypatch.setattr(OpenAIDialect, "read_head", counting_read)
    monkeypatch.setattr(OpenAIDialect, "decode_head", counting_decode)
    return seen


async def test_a_repeated_cacheable_body_is_parsed_and_decoded_once(
    cache_gateway: Gateway, parses: list[str]
) -> None:
    body = orjson.dumps(openai_chat("parsed once"))
    statuses = []
    for _ in range(3):
        answer = await cache_gateway.client.post(
            CHAT, content=body, headers=cache_gateway.openai_headers()
        )
        statuses.append(answer.headers["x-relaygate-cache"])
    assert statuses == ["miss", "hit", "hit"]
    assert parses == ["head", "decode"]
    # A body differing in an ignored field is another body: parsed, and a hit by its key.
    other = orjson.dumps(openai_chat("parsed once", user="someone"))
    answer = await cache_gateway.client.post(
        CHAT, content=other, headers=cache_gateway.openai_headers()
    )
    assert answer.headers["x-relaygate-cache"] == "hit"
    assert parses == ["head", "decode"] * 2


async def test_a_body_the_cache_does_not_take_is_parsed_every_time(
    cache_gateway: Gateway, parses: list[str]
) -> None:
    warm = orjson.dumps(openai_chat("not kept", temperature=0.7))  # not deterministic
    cached = orjson.dumps(openai_chat("kept only when used"))
    skip = cache_gateway.openai_headers(**{"x-relaygate-cache": "skip"})
    for content, headers in ((warm, cache_gateway.openai_headers()), (cached, skip)):
        for _ in range(2):
            answer = await cache_gateway.client.post(CHAT, content=content, headers=headers)
            assert answer.headers["x-relaygate-cache"] == "skip"
    assert parses == ["head", "decode"] * 4


async def test_only_deterministic_requests_are_cached(cache_gateway: Gateway) -> None:
    warm = openai_chat("five", temperature=0.7)
    for _ in range(2):
        answer = await cache_gateway.openai(warm)
        assert answer.headers["x-relaygate-cache"] == "skip"
    no_temperature = {k: v for k, v in openai_chat("five").items() if k != "temperature"}
    answer = await cache_gateway.openai(no_temperature)
    assert answer.headers["x-relaygate-cache"] == "skip"
    assert cache_gateway.upstream_calls("gpt") == 3


async def test_skip_and_refresh_headers(cache_gateway: Gateway) -> None:
    body = openai_chat("six")
    await cache_gateway.openai(body)
    skipped = await cache_gateway.client.post(
        CHAT, json=body, headers=cache_gateway.openai_headers(**{"x-relaygate-cache": "skip"})
    )
    assert skipped.headers["x-relaygate-cache"] == "skip"
    refreshed = await cache_gateway.client.post(
        CHAT, json=body, headers=cache_gateway.openai_headers(**{"x-relaygate-cache": "Refresh"})
    )
    assert refreshed.headers["x-relaygate-cache"] == "miss"
    hit = await cache_gateway.openai(body)
    assert hit.headers["x-relaygate-cache"] == "hit"
    assert hit.json()["id"] == refreshed.json()["id"]  # the refreshed answer overwrote the entry
    assert cache_gateway.upstream_calls("gpt") == 3


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-relaygate-cache", "sometimes"),
        ("x-relaygate-cache-ttl", "soon"),
        ("x-relaygate-cache-ttl", "-5"),
        ("x-relaygate-cache-ttl", "nan"),
    ],
)
async def test_bad_cache_headers_are_a_400_naming_the_header(
    cache_gateway: Gateway, header: str, value: str
) -> None:
    openai = await cache_gateway.client.post(
        CHAT, json=openai_chat(), headers=cache_gateway.openai_headers(**{header: value})
    )
    assert openai.status_code == 400
    assert header in openai.json()["error"]["message"]
    anthropic = await cache_gateway.client.post(
        MESSAGES, json=anthropic_chat(), headers=cache_gateway.anthropic_headers(**{header: value})
    )
    assert anthropic.status_code == 400
    assert anthropic.json()["type"] == "error"
    assert header in anthropic.json()["error"]["message"]
    assert cache_gateway.upstream_calls("gpt") == cache_gateway.upstream_calls("claude") == 0


async def test_ttl_header_bounds_the_entry(cache_gateway: Gateway) -> None:
    body = openai_chat("seven")
    headers = cache_gateway.openai_headers(**{"x-relaygate-cache-ttl": "0.05"})
    await cache_gateway.client.post(CHAT, json=body, headers=headers)
    # The entry's lifetime itself is under test, so time has to pass: a quiet machine answers
    # the next request well within a millisecond, which a 1 ms TTL once raced against.
    await asyncio.sleep(0.1)
    again = await cache_gateway.openai(body)
    assert again.headers["x-relaygate-cache"] == "miss"


async def test_entries_are_per_key_unless_global(tmp_path: Path) -> None:
    config = CONFIG.replace(
        "  enabled: true", "  enabled: true\n  models: {claude: {scope: global}}"
    )
    gw = await start_gateway(tmp_path, config)
    try:
        made = new_api_key()
        await gw.services.store.create_key(KeySpec("other", made.key_hash, made.key_prefix))
        await gw.services.keys.refresh()
        other_key = made.raw_key
        await gw.openai(openai_chat("eight"))
        theirs = await gw.client.post(
            CHAT, json=openai_chat("eight"), headers=gw.openai_headers(other_key)
        )
        assert theirs.headers["x-relaygate-cache"] == "miss"
        await gw.client.post(MESSAGES, json=anthropic_chat("eight"), headers=gw.anthropic_headers())
        shared = await gw.client.post(
            MESSAGES, json=anthropic_chat("eight"), headers=gw.anthropic_headers(other_key)
        )
        assert shared.headers["x-relaygate-cache"] == "hit"
    finally:
        await gw.client.aclose()
        await gw.services.close()


async def test_a_hit_is_a_free_ledger_row_with_the_tokens_it_saved(cache_gateway: Gateway) -> None:
    body = openai_chat("nine")
    first = await cache_gateway.openai(body)
    hit = await cache_gateway.openai(body)
    [miss_row] = await cache_gateway.ledger_rows(first.headers["x-request-id"])
    [hit_row] = await cache_gateway.ledger_rows(hit.headers["x-request-id"])
    assert not miss_row.cache_hit and hit_row.cache_hit
    assert hit_row.cost_usd == 0 and hit_row.attempts == 0
    assert hit_row.output_tokens == miss_row.output_tokens > 0
    assert hit_row.input_tokens == miss_row.input_tokens
    metrics = (await cache_gateway.client.get("/metrics")).text
    assert 'relaygate_cache_requests_total{model="gpt",result="hit"} 1.0' in metrics
    assert 'relaygate_cache_hit_ratio{model="gpt"} 0.5' in metrics
    assert "relaygate_cache_bytes " in metrics and "relaygate_cache_evictions_total" in metrics
    tokens = miss_row.input_tokens + miss_row.output_tokens
    assert f'relaygate_cache_tokens_saved_total{{model="gpt"}} {float(tokens)}' in metrics


async def test_cached_entries_hold_no_caller_secret(cache_gateway: Gateway) -> None:
    await cache_gateway.openai(openai_chat("ten"))
    backend = cache_gateway.services.cache.backend if cache_gateway.services.cache else None
    entries = list(backend._entries.values())  # type: ignore[union-attr]
    assert entries and all(cache_gateway.api_key.encode() not in e.value for e in entries)


async def test_hit_charge_full_prices_a_hit_like_the_call_it_saved(tmp_path: Path) -> None:
    config = CONFIG.replace("  enabled: true", "  enabled: true\n  hit_charge: full")
    config = "accounting:\n  pricing:\n    gpt-mock: {input: 1000, output: 2000}\n" + config
    gw = await start_gateway(tmp_path, config)
    try:
        first = await gw.openai(openai_chat("priced"))
        hit = await gw.openai(openai_chat("priced"))
        assert hit.headers["x-relaygate-cache"] == "hit"
        [miss_row] = await gw.ledger_rows(first.headers["x-request-id"])
        [hit_row] = await gw.ledger_rows(hit.headers["x-request-id"])
        assert miss_row.cost_usd > 0 and hit_row.cost_usd == pytest.approx(miss_row.cost_usd)
        assert hit_row.cache_hit and hit_row.attempts == 0
        metrics = (await gw.client.get("/metrics")).text
        assert f'relaygate_cache_saved_usd_total{{model="gpt"}} {miss_row.cost_usd}' in metrics
    finally:
        await gw.client.aclose()
        await gw.services.close()


def test_the_request_log_says_how_the_cache_answered() -> None:
    ctx = RequestContext("req_1", "openai.chat", "openai")
    assert "cache" not in request_fields(ctx)
    ctx.cache_status, ctx.coalesced_with = "coalesced", "req_0"
    fields = request_fields(ctx)
    assert fields["cache"] == "coalesced" and fields["coalesced_with"] == "req_0"
