"""The SessionStore contract, run against both backends: memory and Redis (real, db 15).

Then what only Redis must do: appends from several OS processes on one session all land.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaygate.core.redis_client import POOL_CONNECTIONS
from relaygate.core.types import Message, TextBlock, ToolResultBlock, ToolUseBlock
from relaygate.sessions import (
    MemorySessionStore,
    RedisSessionStore,
    SessionPolicy,
    SessionStore,
    SessionUnavailableError,
    Turn,
)

WORKER = Path(__file__).with_name("session_worker.py")
POLICY = SessionPolicy(max_turns=10, max_tokens=0, ttl_seconds=60)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def prefix() -> str:
    """Keys of this test only: a concurrent run on the same Redis cannot collide."""
    return f"test:sess:{uuid.uuid4().hex}:"


@pytest.fixture
async def store(store_url: str, prefix: str) -> AsyncIterator[SessionStore]:
    made: SessionStore
    if store_url == "memory":
        made = MemorySessionStore()
    else:
        made = RedisSessionStore.from_url(store_url, timeout=2.0, prefix=prefix)
    yield made
    await made.close()


def turn(text: str) -> Turn:
    return Turn.of((Message("user", (TextBlock(text),)), Message("assistant", (TextBlock("ok"),))))


def first_texts(turns: list[Turn]) -> list[str]:
    out = []
    for t in turns:
        block = t.messages[0].content[0]
        out.append(block.text if isinstance(block, TextBlock) else "tool_result")
    return out


async def test_empty_session_has_no_turns(store: SessionStore) -> None:
    assert await store.load("key1", "s") == []
    assert await store.delete("key1", "s") is False


async def test_turns_round_trip_in_order(store: SessionStore) -> None:
    for text in ("one", "two", "three"):
        await store.append("key1", "s", turn(text), POLICY)
    loaded = await store.load("key1", "s")
    assert first_texts(loaded) == ["one", "two", "three"]
    assert loaded[0] == turn("one")


async def test_tool_use_turns_are_stored_whole(store: SessionStore) -> None:
    call = Turn.of(
        (
            Message("user", (TextBlock("weather?"),)),
            Message(
                "assistant", (TextBlock("checking"), ToolUseBlock("c1", "w", {"city": "Oslo"}))
            ),
        )
    )
    answer = Turn.of(
        (
            Message("user", (ToolResultBlock("c1", (TextBlock("rain"),)),)),
            Message("assistant", (TextBlock("It rains."),)),
        )
    )
    await store.append("key1", "s", call, POLICY)
    await store.append("key1", "s", answer, POLICY)
    assert await store.load("key1", "s") == [call, answer]


async def test_trims_by_turns_oldest_first(store: SessionStore) -> None:
    policy = SessionPolicy(max_turns=3, ttl_seconds=60)
    dropped = [await store.append("key1", "s", turn(str(i)), policy) for i in range(5)]
    assert dropped == [0, 0, 0, 1, 1]
    assert first_texts(await store.load("key1", "s")) == ["2", "3", "4"]


async def test_trims_by_tokens_oldest_first(store: SessionStore) -> None:
    big, small = turn("x" * 800), turn("y")
    policy = SessionPolicy(max_turns=10, max_tokens=big.tokens + small.tokens, ttl_seconds=60)
    await store.append("key1", "s", big, policy)
    assert await store.append("key1", "s", big, policy) == 1
    assert await store.append("key1", "s", small, policy) == 0
    assert await store.load("key1", "s") == [big, small]


async def test_trimming_never_leaves_an_orphaned_tool_result(store: SessionStore) -> None:
    call = Turn.of(
        (Message("user", (TextBlock("q"),)), Message("assistant", (ToolUseBlock("c1", "f", {}),)))
    )
    result = Turn.of(
        (
            Message("user", (ToolResultBlock("c1", (TextBlock("r"),)),)),
            Message("assistant", (TextBlock("done"),)),
        )
    )
    policy = SessionPolicy(max_turns=2, ttl_seconds=60)
    dropped = [await store.append("key1", "s", t, policy) for t in (turn("a"), call, result)]
    assert dropped == [0, 0, 1]
    assert await store.append("key1", "s", turn("b"), policy) == 2  # the call, then its result
    assert first_texts(await store.load("key1", "s")) == ["b"]


async def test_scoped_to_the_key(store: SessionStore) -> None:
    await store.append("key1", "s", turn("mine"), POLICY)
    assert await store.load("key2", "s") == []
    assert await store.delete("key2", "s") is False
    await store.append("key2", "s", turn("theirs"), POLICY)
    assert first_texts(await store.load("key1", "s")) == ["mine"]
    assert first_texts(await store.load("key2", "s")) == ["theirs"]


async def test_scope_and_id_cannot_be_confused(store: SessionStore) -> None:
    await store.append("a:b", "c", turn("first"), POLICY)
    assert await store.load("a", "b:c") == []


async def test_delete_forgets(store: SessionStore) -> None:
    await store.append("key1", "s", turn("x"), POLICY)
    assert await store.delete("key1", "s") is True
    assert await store.load("key1", "s") == []


async def test_ttl_expires_the_session(store: SessionStore) -> None:
    await store.append("key1", "s", turn("x"), SessionPolicy(ttl_seconds=0.05))
    await asyncio.sleep(0.2)
    assert await store.load("key1", "s") == []


async def test_append_restarts_the_ttl(store: SessionStore) -> None:
    # 1.2 s after the first write, 0.6 s after the second: only a restarted TTL keeps it, and a
    # stall of up to 0.4 s on a loaded machine does not make the test fail.
    policy = SessionPolicy(ttl_seconds=1.0)
    await store.append("key1", "s", turn("a"), policy)
    await asyncio.sleep(0.6)
    await store.append("key1", "s", turn("b"), policy)
    await asyncio.sleep(0.6)
    assert first_texts(await store.load("key1", "s")) == ["a", "b"]


async def test_concurrent_appends_keep_every_turn(store: SessionStore) -> None:
    policy = SessionPolicy(max_turns=100, ttl_seconds=60)
    await asyncio.gather(*(store.append("key1", "s", turn(str(i)), policy) for i in range(50)))
    assert sorted(first_texts(await store.load("key1", "s")), key=int) == [
        str(i) for i in range(50)
    ]


def test_memory_store_is_bounded() -> None:
    store = MemorySessionStore(max_sessions=2)

    async def fill() -> list[list[Turn]]:
        for name in ("a", "b", "c"):
            await store.append("k", name, turn(name), POLICY)
        return [await store.load("k", name) for name in ("a", "b", "c")]

    a, b, c = asyncio.run(fill())
    assert (a, len(b), len(c)) == ([], 1, 1)
    assert len(store) == 2 and store.evicted == 1


@pytest.mark.redis
async def test_appends_from_several_processes_all_land(redis_url: str, prefix: str) -> None:
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), redis_url, prefix, str(n), "25"])
        for n in range(4)
    ]
    for worker in workers:
        assert await asyncio.to_thread(worker.wait, 60) == 0
    store = RedisSessionStore.from_url(redis_url, timeout=2.0, prefix=prefix)
    try:
        loaded = first_texts(await store.load("key1", "shared"))
    finally:
        await store.close()
    assert sorted(loaded) == sorted(f"{n}-{i}" for n in range(4) for i in range(25))


async def test_redis_down_is_a_503_never_a_silent_empty_history() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        store = RedisSessionStore.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.5)
        try:
            with pytest.raises(SessionUnavailableError) as caught:
                await store.load("key1", "s")
            assert caught.value.status == 503
            with pytest.raises(SessionUnavailableError):
                await store.append("key1", "s", turn("x"), POLICY)
        finally:
            await store.close()


async def test_a_turn_over_the_token_cap_is_not_kept(store: SessionStore) -> None:
    await store.append("key1", "s", turn("a"), POLICY)
    huge = turn("x" * 4000)
    capped = SessionPolicy(max_turns=10, max_tokens=huge.tokens - 1, ttl_seconds=60)
    assert await store.append("key1", "s", huge, capped) == 2
    assert await store.load("key1", "s") == []


def test_memory_store_is_bounded_in_bytes_too() -> None:
    big = turn("x" * 4000)
    store = MemorySessionStore(max_sessions=100, max_bytes=big.tokens * 4 * 3)

    async def fill() -> list[int]:
        for name in ("a", "b", "c", "d"):
            await store.append("k", name, big, POLICY)
        await store.delete("k", "d")
        return [len(await store.load("k", name)) for name in ("a", "b", "c", "d")]

    assert asyncio.run(fill()) == [0, 1, 1, 0]
    assert store.evicted == 1
    assert store.bytes_held == big.tokens * 4 * 2


@pytest.mark.redis
async def test_redis_trims_exactly_like_memory(redis_url: str, prefix: str) -> None:
    """The Lua script mirrors turns.trim: random turns and policies, both stores, same turns."""
    rng = random.Random(11)
    memory = MemorySessionStore()
    shared = RedisSessionStore.from_url(redis_url, timeout=2.0, prefix=prefix)
    try:
        for n in range(300):
            kind = rng.choice(["said", "said", "call", "answer"])
            made = (
                Turn.of(
                    (
                        Message("user", (TextBlock(f"q{n}"),)),
                        Message("assistant", (ToolUseBlock(f"c{n}", "f", {}),)),
                    )
                )
                if kind == "call"
                else Turn.of(
                    (
                        Message("user", (ToolResultBlock(f"c{n - 1}", (TextBlock("r"),)),)),
                        Message("assistant", (TextBlock("a"),)),
                    )
                )
                if kind == "answer"
                else turn("x" * rng.randint(0, 300))
            )
            policy = SessionPolicy(
                max_turns=rng.randint(1, 8), max_tokens=rng.choice([0, 60, 150]), ttl_seconds=60
            )
            dropped = await memory.append("k", "s", made, policy)
            assert await shared.append("k", "s", made, policy) == dropped
            assert await shared.load("k", "s") == await memory.load("k", "s")
    finally:
        await shared.close()


@pytest.mark.redis
async def test_more_loads_in_flight_than_pooled_connections_all_answer(
    redis_url: str, prefix: str
) -> None:
    # redis-py's default pool raised "Too many connections" at 100 calls in flight: a 503 for
    # a session load while Redis was up and well.
    store = RedisSessionStore.from_url(redis_url, timeout=5.0, prefix=prefix)
    try:
        await store.append("k", "s", turn("one"), POLICY)
        loads = await asyncio.gather(*(store.load("k", "s") for _ in range(3 * POOL_CONNECTIONS)))
        assert all(first_texts(turns) == ["one"] for turns in loads)
    finally:
        await store.close()
