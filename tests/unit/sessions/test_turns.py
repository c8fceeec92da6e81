"""Trimming (turns, tokens, never an orphaned tool result), session ids, the stored form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaygate.core.errors import InvalidRequestError, UpstreamError
from relaygate.core.events import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    StreamError,
    TextDelta,
    ToolArgsDelta,
)
from relaygate.core.types import (
    FinishReason,
    ImageBlock,
    Message,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.sessions import AnswerCollector, SessionPolicy, Turn, check_session_id, trim
from relaygate.sessions.codec import decode_turn, encode_turn


def said(text: str) -> Turn:
    return Turn.of((Message("user", (TextBlock(text),)), Message("assistant", (TextBlock("ok"),))))


def tool_call(n: int) -> Turn:
    use = ToolUseBlock(f"call_{n}", "lookup", {"n": n})
    return Turn.of(
        (Message("user", (TextBlock(f"q{n}"),)), Message("assistant", (TextBlock("hm"), use)))
    )


def tool_answer(n: int) -> Turn:
    result = ToolResultBlock(f"call_{n}", (TextBlock(f"r{n}"),))
    return Turn.of((Message("user", (result,)), Message("assistant", (TextBlock(f"a{n}"),))))


def texts(turns: list[Turn]) -> list[str]:
    first = [t.messages[0].content[0] for t in turns]
    return [b.text if isinstance(b, TextBlock) else type(b).__name__ for b in first]


def test_keeps_the_newest_turns() -> None:
    turns = [said(str(i)) for i in range(15)]
    assert texts(trim(turns, SessionPolicy(max_turns=10))) == [str(i) for i in range(5, 15)]


def test_token_cap_drops_the_oldest_first() -> None:
    turns = [said("x" * 400) for _ in range(4)] + [said("new")]
    cap = turns[-1].tokens + turns[-2].tokens
    kept = trim(turns, SessionPolicy(max_turns=10, max_tokens=cap))
    assert kept == turns[-2:]
    assert sum(t.tokens for t in kept) <= cap


def test_token_cap_below_the_newest_turn_keeps_nothing() -> None:
    assert trim([said("x" * 400)], SessionPolicy(max_tokens=5)) == []


def test_never_opens_with_an_orphaned_tool_result() -> None:
    turns = [said("a"), tool_call(1), tool_answer(1), said("b")]
    kept = trim(turns, SessionPolicy(max_turns=2))
    assert kept == [turns[3]]
    # The tool call and its result stay together when both fit.
    assert trim(turns, SessionPolicy(max_turns=3)) == turns[1:]


def test_token_trim_never_splits_a_tool_call_from_its_result() -> None:
    turns = [tool_call(1), tool_answer(1), said("b")]
    cap = turns[1].tokens + turns[2].tokens
    assert trim(turns, SessionPolicy(max_tokens=cap)) == [turns[2]]


@pytest.mark.parametrize("good", ["shopper-42", "a" * 128, "üñí code:1/2"])
def test_session_ids_accepted(good: str) -> None:
    assert check_session_id(good) == good


@pytest.mark.parametrize("bad", ["", "a" * 129, "a\nb", "tab\there", "nul\x00", "del\x7f"])
def test_bad_session_ids_name_the_header(bad: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_session_id(bad)
    assert caught.value.param == "x-relaygate-session"
    assert "x-relaygate-session" in caught.value.message


def test_stored_form_round_trips_every_block() -> None:
    turn = Turn.of(
        (
            Message(
                "user",
                (
                    TextBlock("hi", {"type": "ephemeral"}),
                    ImageBlock("image/png", "AAAA"),
                    ToolResultBlock("t1", (TextBlock("r"),), is_error=True),
                ),
            ),
            Message(
                "assistant",
                (
                    ThinkingBlock("hmm", "sig"),
                    RedactedThinkingBlock("xx"),
                    ToolUseBlock("t2", "f", {"a": [1, 2]}),
                ),
            ),
        )
    )
    entry = encode_turn(turn)
    assert entry.startswith(b"%d|1|" % turn.tokens)
    assert decode_turn(entry) == turn


@pytest.mark.parametrize(
    "corrupt", [b"", b"12|0|not json", b"x|0|[]", b'3|0|[{"role":"tool","content":[]}]']
)
def test_corrupt_entries_are_skipped(corrupt: bytes) -> None:
    assert decode_turn(corrupt) is None


def test_collector_rebuilds_a_completed_stream() -> None:
    collector = AnswerCollector()
    collector.feed(
        [
            MessageStart("m", "x", Usage()),
            BlockStart(0, TextBlock("")),
            TextDelta(0, "Hel"),
            TextDelta(0, "lo"),
            BlockStop(0),
            BlockStart(1, ToolUseBlock("c1", "f", {})),
            ToolArgsDelta(1, '{"a"'),
            ToolArgsDelta(1, ": 1}"),
            BlockStop(1),
            MessageDelta(FinishReason.TOOL_USE, Usage()),
        ]
    )
    assert collector.content() is None  # not finished yet
    collector.feed([MessageStop()])
    assert collector.content() == (TextBlock("Hello"), ToolUseBlock("c1", "f", {"a": 1}))


def test_collector_refuses_a_failed_stream() -> None:
    collector = AnswerCollector()
    collector.feed([BlockStart(0, TextBlock("")), TextDelta(0, "par")])
    collector.feed([StreamError(UpstreamError("cut")), MessageStop()])
    assert collector.content() is None


def test_system_turns_in_messages_are_stored_too() -> None:
    # The Anthropic dialect accepts role "system" turns inside messages (Claude Code sends them).
    turn = Turn.of(
        (
            Message("system", (TextBlock("be brief"),)),
            Message("user", (TextBlock("hi"),)),
            Message("assistant", (TextBlock("ok"),)),
        )
    )
    assert decode_turn(encode_turn(turn)) == turn


def test_a_tool_result_after_a_system_turn_still_refers_to_an_older_turn() -> None:
    result = ToolResultBlock("call_1", (TextBlock("r"),))
    turn = Turn.of(
        (
            Message("system", (TextBlock("note"),)),
            Message("user", (result,)),
            Message("assistant", (TextBlock("done"),)),
        )
    )
    assert turn.opens_with_tool_result
    # A tool result answering a tool call made earlier in the same turn is not an orphan.
    inner = Turn.of(
        (
            Message("user", (TextBlock("q"),)),
            Message("assistant", (ToolUseBlock("call_2", "f", {}),)),
            Message("user", (ToolResultBlock("call_2", (TextBlock("r"),)),)),
            Message("assistant", (TextBlock("a"),)),
        )
    )
    assert not inner.opens_with_tool_result


TURN_KINDS = st.sampled_from(["said", "call", "answer"])


def build(kind: str, n: int, size: int) -> Turn:
    if kind == "call":
        return tool_call(n)
    if kind == "answer":
        return tool_answer(n)
    return said("x" * size)


@given(
    st.lists(st.tuples(TURN_KINDS, st.integers(0, 400)), max_size=30),
    st.integers(1, 12),
    st.integers(0, 600),
)
def test_trim_invariants(kinds: list[tuple[str, int]], max_turns: int, max_tokens: int) -> None:
    turns = [build(kind, n, size) for n, (kind, size) in enumerate(kinds)]
    kept = trim(turns, SessionPolicy(max_turns=max_turns, max_tokens=max_tokens))
    assert kept == turns[len(turns) - len(kept) :]  # the newest ones, in order
    assert len(kept) <= max_turns
    if max_tokens:
        assert sum(t.tokens for t in kept) <= max_tokens
    assert not kept or not kept[0].opens_with_tool_result
