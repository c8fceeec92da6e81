"""Valid and nearly valid requests in both dialects, against the real gateway and the mock.

A valid request (built from the real wire shapes, translated or not, streamed or not) must
succeed; a nearly valid one (one field broken) may be refused, but only with a 4xx error in the
caller's dialect. Neither may ever see a 5xx or a guarded secret.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given

from tests.fuzz.anthropic_bodies import count_tokens_bodies, message_bodies
from tests.fuzz.mutations import encode, nearly_valid
from tests.fuzz.openai_bodies import chat_bodies
from tests.fuzz.oracle import FuzzTarget
from tests.fuzz.profile import fuzz_settings


def _ok(target: FuzzTarget, dialect: Any, kind: Any, body: dict[str, Any]) -> None:
    response = target.post(dialect, kind, orjson.dumps(body))
    target.check(response, dialect, kind)
    assert response.status_code == 200, f"a valid request was refused: {response.text[:500]}"


@fuzz_settings(120)
@given(body=chat_bodies())
def test_valid_openai_chat_succeeds(target: FuzzTarget, body: dict[str, Any]) -> None:
    _ok(target, "openai", "chat", body)


@fuzz_settings(120)
@given(body=message_bodies())
def test_valid_anthropic_messages_succeed(target: FuzzTarget, body: dict[str, Any]) -> None:
    _ok(target, "anthropic", "chat", body)


@fuzz_settings(40)
@given(body=count_tokens_bodies())
def test_valid_count_tokens_succeeds(target: FuzzTarget, body: dict[str, Any]) -> None:
    _ok(target, "anthropic", "count_tokens", body)


@fuzz_settings(150)
@given(body=nearly_valid(chat_bodies()))
def test_nearly_valid_openai_chat(target: FuzzTarget, body: dict[str, Any]) -> None:
    target.check(target.post("openai", "chat", encode(body)), "openai")


@fuzz_settings(150)
@given(body=nearly_valid(message_bodies()))
def test_nearly_valid_anthropic_messages(target: FuzzTarget, body: dict[str, Any]) -> None:
    target.check(target.post("anthropic", "chat", encode(body)), "anthropic")


@fuzz_settings(50)
@given(body=nearly_valid(count_tokens_bodies()))
def test_nearly_valid_count_tokens(target: FuzzTarget, body: dict[str, Any]) -> None:
    response = target.post("anthropic", "count_tokens", encode(body))
    target.check(response, "anthropic", "count_tokens")
