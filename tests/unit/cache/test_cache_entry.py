"""Cache entries: a whole answer round-trips; a stream folds back into the same answer; corrupt
bytes are a miss."""

from __future__ import annotations

import pytest

from relaygate.cache import AnswerBuilder, decode_entry, encode_entry
from relaygate.core.events import answer_events
from relaygate.core.types import (
    ChatResponse,
    FinishReason,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)

ANSWER = ChatResponse(
    id="msg_1",
    model="m",
    content=(
        ThinkingBlock("hmm", "sig=="),
        RedactedThinkingBlock("opaque"),
        TextBlock("hello"),
        ToolUseBlock("tu_1", "lookup", {"q": [1, 2], "deep": {"a": None}}),
    ),
    finish_reason=FinishReason.TOOL_USE,
    usage=Usage(10, 20, 3, 4, 5, 1),
    stop_sequence=None,
)


def test_an_answer_round_trips() -> None:
    assert decode_entry(encode_entry(ANSWER)) == ANSWER


def test_a_stream_folds_back_into_its_answer() -> None:
    builder = AnswerBuilder()
    for event in answer_events(ANSWER):
        builder.feed(event)
    assert builder.build() == ANSWER


def test_a_stream_without_its_end_is_no_answer() -> None:
    builder = AnswerBuilder()
    for event in answer_events(ANSWER)[:-2]:
        builder.feed(event)
    assert builder.build() is None


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"{}", b'{"v": 99}', b'{"v": 1, "id": "x"}', b"[1,2]", b'"text"'],
)
def test_corrupt_bytes_are_no_entry(raw: bytes) -> None:
    assert decode_entry(raw) is None


def test_an_entry_with_a_bad_block_is_no_entry() -> None:
    good = encode_entry(ANSWER)
    assert decode_entry(good.replace(b'"t":"text"', b'"t":"image"')) is None
    assert decode_entry(good.replace(b'"finish":"tool_use"', b'"finish":"nope"')) is None
