"""A body's head (``read_head``): what routing, the busy check and the ledger need before the full
decode, which ``decode_head`` then finishes exactly as ``decode_request`` would."""

from __future__ import annotations

import orjson
import pytest

from relaygate.core.errors import InvalidRequestError
from relaygate.dialects.anthropic.dialect import AnthropicDialect
from relaygate.dialects.base import Dialect, RequestHead
from relaygate.dialects.openai.dialect import OpenAIDialect

HEADERS = {"anthropic-version": "2023-06-01"}
MESSAGES = [{"role": "user", "content": "hi"}]


def body(**fields: object) -> bytes:
    return orjson.dumps(fields)


@pytest.mark.parametrize(
    ("dialect", "raw", "head"),
    [
        (OpenAIDialect(), body(model="m", messages=MESSAGES), ("m", False, None)),
        (
            OpenAIDialect(),
            body(model="m", messages=MESSAGES, stream=True, user="ann"),
            ("m", True, "ann"),
        ),
        (
            AnthropicDialect(),
            body(model="c", max_tokens=5, messages=MESSAGES, metadata={"user_id": "bo"}),
            ("c", False, "bo"),
        ),
        (
            AnthropicDialect(),
            body(model="c", max_tokens=5, messages=MESSAGES, stream=True),
            ("c", True, None),
        ),
    ],
)
def test_the_head_and_its_decode_match_the_whole_decode(
    dialect: Dialect, raw: bytes, head: tuple[str, bool, str | None]
) -> None:
    found = dialect.read_head(raw)
    assert (found.model, found.stream, found.user) == head
    assert found.raw == orjson.loads(raw)
    assert dialect.decode_head(found, HEADERS) == dialect.decode_request(raw, HEADERS)


@pytest.mark.parametrize("dialect", [OpenAIDialect(), AnthropicDialect()])
def test_a_head_needs_a_json_object_with_a_model(dialect: Dialect) -> None:
    for raw in (b"{", b"[]", body(messages=MESSAGES), body(model="")):
        with pytest.raises(InvalidRequestError):
            dialect.read_head(raw)


@pytest.mark.parametrize(
    ("dialect", "raw"),
    [
        (OpenAIDialect(), body(model="m", messages=MESSAGES, stream="yes", user=7)),
        (AnthropicDialect(), body(model="c", max_tokens=5, messages=MESSAGES, metadata=[1])),
        (AnthropicDialect(), body(model="c", max_tokens=5, messages=MESSAGES, stream=1)),
    ],
)
def test_invalid_fields_are_left_out_of_the_head_and_refused_by_the_decode(
    dialect: Dialect, raw: bytes
) -> None:
    head = dialect.read_head(raw)
    assert (head.stream, head.user) == (False, None)
    assert isinstance(head, RequestHead)
    with pytest.raises(InvalidRequestError):
        dialect.decode_head(head, HEADERS)
