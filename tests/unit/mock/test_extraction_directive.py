from __future__ import annotations

import pytest

from relaygate.core.errors import InvalidRequestError
from relaygate.core.types import ChatRequest, Message, TextBlock
from relaygate.extraction import parse_answer
from relaygate.mock import build_reply

ORDER = '{"order_id": "A1", "items": [{"sku": "x", "qty": 2}]}'


def ask(*turns: tuple[str, str]) -> str:
    messages = tuple(Message(role, (TextBlock(text),)) for role, text in turns)  # type: ignore[arg-type]
    reply = build_reply(ChatRequest(dialect="openai", model="mock", messages=messages), 1)
    block = reply.content[0]
    assert isinstance(block, TextBlock)
    return block.text


SHAPES = [("plain", "plain"), ("prose", "embedded"), ("fenced", "fenced"), ("broken", "repaired")]


@pytest.mark.parametrize(("mode", "how"), SHAPES)
def test_each_shape_holds_the_json_the_way_a_model_writes_it(mode: str, how: str) -> None:
    text = ask(("user", f"Extract. Message: mock:extract {mode} {ORDER}"))
    parsed = parse_answer(text)
    assert parsed.value == {"order_id": "A1", "items": [{"sku": "x", "qty": 2}]}
    assert parsed.how == how


def test_reask_answers_invalid_json_until_re_asked() -> None:
    first = ("user", f"mock:extract reask {ORDER}")
    assert ask(first) == "{}"
    again = ask(first, ("assistant", "{}"), ("user", "Your previous answer could not be used"))
    assert parse_answer(again).value["order_id"] == "A1"


def test_never_holds_no_json_and_an_unknown_mode_is_refused() -> None:
    first = ("user", "mock:extract never")
    assert "{" not in ask(first) and "{" not in ask(first, ("assistant", "x"), ("user", "again"))
    with pytest.raises(InvalidRequestError, match="mock:extract mode 'sometimes'"):
        ask(("user", "mock:extract sometimes"))
