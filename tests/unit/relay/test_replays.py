"""Cache hits decoded once and encoded once per dialect, keyed by the stored bytes."""

from __future__ import annotations

import pytest

import relaygate.relay.replays as replays_module
from relaygate.cache import decode_entry, encode_entry
from relaygate.core.types import ChatResponse, FinishReason, TextBlock, Usage
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.relay.replays import Replays


def answer(text: str) -> ChatResponse:
    return ChatResponse(
        id=f"msg_{text}",
        model="m",
        content=(TextBlock(text),),
        finish_reason=FinishReason.END_TURN,
        usage=Usage(3, 4),
        stop_sequence=None,
    )


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    seen: list[bytes] = []

    def counting(raw: bytes) -> ChatResponse | None:
        seen.append(raw)
        return decode_entry(raw)

    monkeypatch.setattr(replays_module, "decode_entry", counting)
    return seen


def test_an_entry_is_decoded_once_and_encoded_once_per_dialect(decodes: list[bytes]) -> None:
    replays = Replays()
    stored = encode_entry(answer("hello"))
    openai, anthropic = OpenAIDialect(), AnthropicDialect()
    for _ in range(3):
        assert replays.answer(stored) == answer("hello")
        assert replays.body(stored, openai) == openai.encode_response(answer("hello"))
        assert replays.body(stored, anthropic) == anthropic.encode_response(answer("hello"))
    # Another backend's copy of the same bytes (Redis hands out new objects) is the same entry.
    assert replays.answer(bytes(bytearray(stored))) == answer("hello")
    assert decodes == [stored]


def test_a_corrupt_entry_is_no_answer_and_is_not_kept(decodes: list[bytes]) -> None:
    replays = Replays()
    assert replays.answer(b'{"v": 1, "oops"') is None
    assert replays.answer(b'{"v": 1, "oops"') is None
    assert len(decodes) == 2
    with pytest.raises(ValueError, match="not a decodable cache entry"):
        replays.body(b'{"v": 1, "oops"', OpenAIDialect())


def test_the_least_recently_used_entries_go_past_the_byte_bound(decodes: list[bytes]) -> None:
    entries = [encode_entry(answer(str(n) * 50)) for n in range(4)]
    replays = Replays(max_bytes=2 * len(entries[0]) + 10)
    for stored in entries[:3]:
        replays.answer(stored)  # the third pushes the first out
    replays.answer(entries[1])  # still kept
    replays.answer(entries[0])  # decoded again
    assert decodes == [*entries[:3], entries[0]]
