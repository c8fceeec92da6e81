"""Prompt directives and the last user turn."""

from __future__ import annotations

import pytest

from relaygate.core.errors import InvalidRequestError
from relaygate.core.types import ChatRequest, Message, TextBlock, ToolResultBlock, ToolUseBlock
from relaygate.mock.directives import (
    MAX_WORDS,
    NO_DIRECTIVES,
    Directives,
    last_user_turn,
    parse_directives,
)


def test_text_without_directives() -> None:
    assert parse_directives("just a question about mocks") is NO_DIRECTIVES


def test_all_directives_together() -> None:
    text = 'please mock:words 12 and mock:fault 429 and mock:tool lookup {"q": "a b", "n": [1]} ok'
    assert parse_directives(text) == Directives(
        tool="lookup", tool_input={"q": "a b", "n": [1]}, words=12, fault="429"
    )


def test_tool_input_may_touch_the_name() -> None:
    assert parse_directives('mock:tool lookup{"q": 1}') == Directives("lookup", {"q": 1})


def test_the_first_directive_of_a_kind_wins() -> None:
    assert parse_directives("mock:words 3 mock:words 9").words == 3


def test_words_are_capped() -> None:
    assert parse_directives("mock:words 99999999").words == MAX_WORDS


@pytest.mark.parametrize("text", ["mock:words -3", "mock:words x", "mock:words"])
def test_bad_word_counts_are_invalid(text: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_directives(text)
    assert caught.value.param == "messages"


def test_broken_tool_json_is_invalid() -> None:
    with pytest.raises(InvalidRequestError):
        parse_directives('mock:tool lookup {"q": ')


def test_last_user_turn_skips_assistant_messages() -> None:
    req = ChatRequest(
        dialect="anthropic",
        model="m",
        messages=(
            Message("user", (TextBlock("question"),)),
            Message("assistant", (ToolUseBlock("t1", "lookup", {}),)),
            Message(
                "user",
                (
                    ToolResultBlock("t1", (TextBlock("part one"), TextBlock("part two"))),
                    TextBlock("and now?"),
                ),
            ),
            Message("assistant", (TextBlock("prefill"),)),
        ),
    )
    turn = last_user_turn(req)
    assert turn.text == "and now?"
    assert turn.tool_result == "part one\npart two"


def test_last_user_turn_of_no_messages_is_empty() -> None:
    turn = last_user_turn(ChatRequest(dialect="openai", model="m", messages=()))
    assert (turn.text, turn.tool_result) == ("", None)


@pytest.mark.parametrize(
    "tool_json",
    [
        '{"a": "\\ud800"}',  # a lone surrogate: valid for Python's json, not UTF-8
        '{"a": 123456789012345678901234567890}',  # past 64 bits
        '{"a": ' + "[" * 300 + "]" * 300 + "}",  # deeper than a JSON encoder goes
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",  # deeper than Python's decoder goes
    ],
)
def test_tool_input_the_mock_cannot_send_back_is_invalid(tool_json: str) -> None:
    """Found by fuzzing: such input crashed the mock while encoding its answer (a 502)."""
    with pytest.raises(InvalidRequestError) as caught:
        parse_directives(f"mock:tool lookup {tool_json}")
    assert caught.value.param == "messages"
    assert caught.value.status == 400


def test_recall() -> None:
    assert parse_directives("what did I say? mock:recall").recall
    assert not parse_directives("mock:words 3").recall
