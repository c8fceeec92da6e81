"""SessionBook: policies per model and key, history before the request's own messages."""

from __future__ import annotations

import pytest

from relaygate.core.events import BlockStart, MessageStart, MessageStop, TextDelta
from relaygate.core.types import (
    ChatRequest,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.services import build_sessions
from relaygate.sessions import MemorySessionStore, SessionBook, SessionPolicy
from relaygate.sessions.metrics import SessionCollector
from relaygate.settings import Settings
from relaygate.settings.sessions import SessionPolicySettings, SessionSettings


def book(store: MemorySessionStore | None = None) -> SessionBook:
    settings = SessionSettings(
        max_turns=10,
        max_tokens=0,
        ttl_seconds=3600,
        keys={"bot": SessionPolicySettings(max_turns=3, ttl_seconds=60)},
    )
    models = {"big": SessionPolicySettings(max_turns=50, max_tokens=9000)}
    return SessionBook(store or MemorySessionStore(), settings, models)


def test_policy_defaults_then_model_then_key() -> None:
    b = book()
    assert b.policy("anyone", "small") == SessionPolicy(10, 0, 3600)
    assert b.policy("anyone", "big") == SessionPolicy(50, 9000, 3600)
    assert b.policy("bot", "big") == SessionPolicy(3, 9000, 60)


def user(text: str) -> Message:
    return Message("user", (TextBlock(text),))


def request(text: str) -> ChatRequest:
    raw = {"model": "m", "messages": [{"role": "user", "content": text}]}
    return ChatRequest("openai", "m", (user(text),), raw=raw)


async def test_history_is_the_recorded_turns() -> None:
    b = book()
    policy = b.policy("anyone", "m")
    first = await b.open("s1", "key1", policy, request("hello"))
    assert first.history == ()
    assert await first.record((TextBlock("hi there"),))
    second = await b.open("s1", "key1", policy, request("again"))
    assert second.history == (user("hello"), Message("assistant", (TextBlock("hi there"),)))
    assert second.asked == (user("again"),)


async def test_a_stream_is_recorded_only_once_complete() -> None:
    b = book()
    policy = b.policy("anyone", "m")
    opened = await b.open("s2", "key1", policy, request("q"))
    await opened.observe([MessageStart("x", "m", Usage()), BlockStart(0, TextBlock(""))])
    await opened.observe([TextDelta(0, "answer")])
    assert await b.turns("key1", "s2") == []
    await opened.observe([MessageStop()])
    turns = await b.turns("key1", "s2")
    assert [m.content for m in turns[0].messages] == [(TextBlock("q"),), (TextBlock("answer"),)]


async def test_a_failed_request_records_nothing() -> None:
    b = book()
    opened = await b.open("s3", "key1", b.policy("a", "m"), request("q"))
    assert not await opened.record(None)
    assert await b.turns("key1", "s3") == []


@pytest.mark.parametrize("bad", ["x" * 129, "a\x1bb"])
async def test_bad_ids_are_refused_everywhere(bad: str) -> None:
    b = book()
    with pytest.raises(Exception, match="x-relaygate-session"):
        await b.open(bad, "key1", b.policy("a", "m"), request("q"))
    with pytest.raises(Exception, match="x-relaygate-session"):
        await b.turns("key1", bad)


def test_settings_per_model_and_key_reach_the_book() -> None:
    settings = Settings.model_validate(
        {
            "models": [
                {"name": "gpt", "deployments": [{"provider": "mock"}], "sessions": {"max_turns": 5}}
            ],
            "sessions": {"ttl_seconds": 120, "keys": {"bot": {"max_tokens": 800}}},
        }
    )
    made = build_sessions(settings)
    assert made.store.backend == "memory"
    assert made.policy("someone", "gpt") == SessionPolicy(5, 0, 120)
    assert made.policy("bot", "gpt") == SessionPolicy(5, 800, 120)


async def test_metrics_count_requests_turns_and_trims() -> None:
    store = MemorySessionStore()
    b = book(store)
    policy = SessionPolicy(max_turns=2)
    for text in ("a", "b", "c"):
        opened = await b.open("s4", "key1", policy, request(text))
        await opened.record((TextBlock("ok"),))
    values = {
        sample.name: sample.value
        for family in SessionCollector(b).collect()
        for sample in family.samples
    }
    assert values["relaygate_session_requests_total"] == 3
    assert values["relaygate_session_turns_recorded_total"] == 3
    assert values["relaygate_session_turns_trimmed_total"] == 1
    assert values["relaygate_session_record_failures_total"] == 0
    assert values["relaygate_sessions_active"] == 1


async def test_a_tool_call_the_caller_does_not_answer_is_left_out_of_the_history() -> None:
    """Upstreams reject a tool call not followed by its result: without this, a caller that
    moved on from a tool call would get a 400 on every later request of the session."""
    b = book()
    policy = b.policy("anyone", "m")
    call = ToolUseBlock("call_1", "lookup", {})
    first = await b.open("s5", "key1", policy, request("look it up"))
    assert await first.record((TextBlock("Calling lookup."), call))
    moved_on = await b.open("s5", "key1", policy, request("never mind"))
    assert moved_on.history == (
        user("look it up"),
        Message("assistant", (TextBlock("Calling lookup."),)),
    )
    result = Message("user", (ToolResultBlock("call_1", (TextBlock("found"),)),))
    answered = await b.open(
        "s5", "key1", policy, ChatRequest("openai", "m", (result,), raw={"messages": []})
    )
    assert answered.history[-1] == Message("assistant", (TextBlock("Calling lookup."), call))


async def test_an_unanswered_tool_call_alone_leaves_no_empty_assistant_turn() -> None:
    b = book()
    policy = b.policy("anyone", "m")
    first = await b.open("s6", "key1", policy, request("q"))
    assert await first.record((ToolUseBlock("call_9", "f", {}),))
    later = await b.open("s6", "key1", policy, request("other"))
    assert later.history == (user("q"),)


async def test_an_unanswered_tool_call_deeper_in_the_history_is_left_out_too() -> None:
    b = book()
    policy = b.policy("anyone", "m")
    first = await b.open("s7", "key1", policy, request("look it up"))
    await first.record((TextBlock("Calling."), ToolUseBlock("call_1", "f", {})))
    second = await b.open("s7", "key1", policy, request("never mind"))
    await second.record((TextBlock("ok"),))
    third = await b.open("s7", "key1", policy, request("and now?"))
    assert not any(isinstance(blk, ToolUseBlock) for m in third.history for blk in m.content)
    assert len(third.history) == 4
