"""Request coalescing in one process (issue 11): identical requests in flight share one upstream
call; followers get every event from the start, whoever leaves; a failure reaches everyone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.integration.cache_support import (
    CHAT,
    CONFIG,
    MESSAGES,
    Gateway,
    RawCall,
    anthropic_chat,
    anthropic_stream_text,
    openai_chat,
    openai_stream_text,
    raw_call,
    start_gateway,
)
from tests.waiting import eventually

from relaygate.dialects.openai import OpenAIDialect

LONG = "mock:words 60"  # 60 chunks 5 ms apart: long enough to join mid-way


def start(gw: Gateway, body: object, path: str = CHAT) -> tuple[RawCall, asyncio.Task[None]]:
    call = RawCall()
    headers = gw.openai_headers() if path == CHAT else gw.anthropic_headers()
    headers["content-type"] = "application/json"
    return call, asyncio.create_task(raw_call(gw.app, path, headers, body, call))


async def test_100_identical_streams_make_one_upstream_call(cache_gateway: Gateway) -> None:
    body = openai_chat(LONG, stream=True)
    answers = await asyncio.gather(*(cache_gateway.openai(body) for _ in range(100)))
    assert cache_gateway.upstream_calls("gpt") == 1
    statuses = sorted(a.headers["x-relaygate-cache"] for a in answers)
    assert statuses.count("miss") == 1
    assert set(statuses) <= {"miss", "coalesced", "hit"} and statuses.count("coalesced") > 50
    texts = {openai_stream_text(a.content) for a in answers}
    assert len(texts) == 1 and len(texts.pop().split()) >= 60
    assert all(a.content.rstrip().endswith(b"data: [DONE]") for a in answers)


async def test_a_follower_joining_mid_stream_gets_every_event(cache_gateway: Gateway) -> None:
    body = anthropic_chat(LONG, stream=True)
    leader, leading = start(cache_gateway, body, MESSAGES)
    await leader.started.wait()
    follower = await cache_gateway.anthropic(body)
    await leading
    assert follower.headers["x-relaygate-cache"] == "coalesced"
    assert leader.headers["x-relaygate-cache"] == "miss"
    text = anthropic_stream_text(bytes(leader.body))
    assert len(text.split()) >= 60 and anthropic_stream_text(follower.content) == text
    assert follower.content.count(b"event: message_start") == 1
    assert cache_gateway.upstream_calls("claude") == 1


async def test_leader_leaving_does_not_end_the_call_for_followers(cache_gateway: Gateway) -> None:
    body = openai_chat(LONG, stream=True)
    leader, leading = start(cache_gateway, body)
    await leader.started.wait()
    following = asyncio.create_task(cache_gateway.openai(body))
    cache = cache_gateway.services.cache
    assert cache is not None
    [flight] = await eventually(lambda: list(cache.flights._flights.values()))
    await eventually(lambda: flight.followers == 1, what="the follower joined")
    leader.leave.set()
    await leading
    follower = await following
    assert follower.headers["x-relaygate-cache"] == "coalesced"
    assert len(openai_stream_text(follower.content).split()) >= 60
    assert follower.content.rstrip().endswith(b"data: [DONE]")
    assert cache_gateway.upstream_calls("gpt") == 1
    assert (await cache_gateway.openai(body)).headers[
        "x-relaygate-cache"
    ] == "hit"  # the whole answer was stored although its first caller left


async def test_a_follower_leaving_disturbs_nobody(cache_gateway: Gateway) -> None:
    body = openai_chat(LONG, stream=True)
    leader, leading = start(cache_gateway, body)
    await leader.started.wait()
    quitter, quitting = start(cache_gateway, body)
    await quitter.started.wait()
    quitter.leave.set()
    await quitting
    await leading
    assert quitter.headers["x-relaygate-cache"] == "coalesced"
    assert len(openai_stream_text(bytes(leader.body)).split()) >= 60
    assert bytes(leader.body).rstrip().endswith(b"data: [DONE]")


async def test_an_upstream_failure_reaches_every_caller_once(cache_gateway: Gateway) -> None:
    body = openai_chat("mock:fault 500", stream=True)
    answers = await asyncio.gather(*(cache_gateway.openai(body) for _ in range(10)))
    assert {a.status_code for a in answers} == {answers[0].status_code}
    assert answers[0].status_code >= 500
    assert all(a.json()["error"]["message"] for a in answers)
    calls = cache_gateway.upstream_calls("gpt")
    assert calls <= 3  # the leader's own attempts only, not ten callers' retries
    again = await cache_gateway.openai(body)
    assert again.headers["x-relaygate-cache"] == "miss"  # nothing was stored


async def test_a_stream_broken_mid_way_ends_every_follower_with_the_error(
    cache_gateway: Gateway,
) -> None:
    body = anthropic_chat("mock:fault drop mock:words 40", stream=True)
    answers = await asyncio.gather(*(cache_gateway.anthropic(body) for _ in range(5)))
    assert cache_gateway.upstream_calls("claude") == 1
    for answer in answers:
        assert answer.status_code == 200
        assert b"event: error" in answer.content
    again = await cache_gateway.anthropic(body)
    assert again.headers["x-relaygate-cache"] == "miss"  # a broken stream is never stored


async def test_each_caller_gets_its_own_ledger_row_marked_coalesced(cache_gateway: Gateway) -> None:
    body = openai_chat(LONG)
    answers = await asyncio.gather(*(cache_gateway.openai(body) for _ in range(5)))
    leader = next(a for a in answers if a.headers["x-relaygate-cache"] == "miss")
    [leader_row] = await cache_gateway.ledger_rows(leader.headers["x-request-id"])
    assert leader_row.cost_usd >= 0 and leader_row.attempts == 1
    for answer in answers:
        if answer is leader:
            continue
        assert answer.headers["x-relaygate-cache"] in ("coalesced", "hit")
        [row] = await cache_gateway.ledger_rows(answer.headers["x-request-id"])
        assert row.cost_usd == 0 and row.attempts == 0
        assert row.output_tokens == leader_row.output_tokens
        if answer.headers["x-relaygate-cache"] == "coalesced":
            assert row.attempt_log == f"coalesced:{leader.headers['x-request-id']}"
            assert not row.cache_hit


async def test_coalescing_can_be_turned_off_per_model(tmp_path: Path) -> None:
    config = CONFIG.replace(
        "  enabled: true", "  enabled: true\n  models: {gpt: {coalesce: false}}"
    )
    gw = await start_gateway(tmp_path, config)
    try:
        body = openai_chat(LONG, stream=True)
        answers = await asyncio.gather(*(gw.openai(body) for _ in range(5)))
        assert all(a.headers["x-relaygate-cache"] in ("miss", "hit") for a in answers)
        assert gw.upstream_calls("gpt") == sum(
            a.headers["x-relaygate-cache"] == "miss" for a in answers
        )
        assert gw.upstream_calls("gpt") > 1
    finally:
        await gw.client.aclose()
        await gw.services.close()


SLOW_WHOLE = CONFIG.replace("first_token_ms: 30, stream_interval_ms: 5", "latency_ms: 50")


async def test_every_coalesced_caller_is_answered_before_any_does_its_bookkeeping(
    tmp_path: Path,
) -> None:
    gw = await start_gateway(tmp_path, SLOW_WHOLE)
    try:
        calls_ = [RawCall() for _ in range(20)]
        answered_at_each_booking: list[int] = []
        finish = gw.services.accounting.finish

        def finish_counting_answers(ctx: Any, elapsed: float | None = None) -> None:
            answered_at_each_booking.append(sum(1 for c in calls_ if c.body))
            finish(ctx, elapsed)

        gw.services.accounting.finish = finish_counting_answers  # type: ignore[method-assign]
        headers = gw.openai_headers() | {"content-type": "application/json"}
        body = openai_chat("is the coupon still valid?")
        await asyncio.gather(*(raw_call(gw.app, CHAT, headers, body, c) for c in calls_))
        assert sorted(c.headers["x-relaygate-cache"] for c in calls_) == ["coalesced"] * 19 + [
            "miss"
        ]
        assert gw.upstream_calls("gpt") == 1
        # The leader's and every follower's answer left before the first ledger row was made.
        assert answered_at_each_booking == [20] * 20
    finally:
        await gw.client.aclose()
        await gw.services.close()


async def test_a_whole_answer_is_encoded_once_for_all_its_callers(
    tmp_path: Path, monkeypatch: Any
) -> None:
    encoded: list[object] = []
    encode = OpenAIDialect.encode_response

    def encode_counting(self: OpenAIDialect, answer: Any) -> bytes:
        encoded.append(answer)
        return encode(self, answer)

    monkeypatch.setattr(OpenAIDialect, "encode_response", encode_counting)
    gw = await start_gateway(tmp_path, SLOW_WHOLE)
    try:
        calls_ = [RawCall() for _ in range(20)]
        headers = gw.openai_headers() | {"content-type": "application/json"}
        body = openai_chat("is the coupon still valid?")
        await asyncio.gather(*(raw_call(gw.app, CHAT, headers, body, c) for c in calls_))
        assert gw.upstream_calls("gpt") == 1
        assert all(c.status == 200 for c in calls_)
        assert len({bytes(c.body) for c in calls_}) == 1
        # Once by the in-process mock making its upstream answer, once for all twenty callers
        # (it was once per caller: 21).
        assert len(encoded) == 2
    finally:
        await gw.client.aclose()
        await gw.services.close()
