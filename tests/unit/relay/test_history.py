"""A session's history goes before the request's messages in the neutral form and in the caller's
own wire body (so a same-dialect upstream gets it with every unmodelled field kept)."""

from __future__ import annotations

from relaygate.core.estimate import estimate_input_tokens
from relaygate.core.types import Message, TextBlock, ToolResultBlock, ToolUseBlock
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.relay.history import with_history

HISTORY = (
    Message("user", (TextBlock("weather?"),)),
    Message("assistant", (TextBlock("checking"), ToolUseBlock("call_1", "w", {"city": "Oslo"}))),
    Message("user", (ToolResultBlock("call_1", (TextBlock("rain"),)),)),
    Message("assistant", (TextBlock("It rains."),)),
)


def openai_request() -> bytes:
    return (
        b'{"model": "m", "seed": 7, "max_completion_tokens": 50, "messages": ['
        b'{"role": "system", "content": "be kind"}, {"role": "user", "content": "and now?"}]}'
    )


def test_no_history_leaves_the_request_alone() -> None:
    req = OpenAIDialect().decode_request(openai_request(), {})
    assert with_history(req, ()) is req


def test_openai_body_keeps_its_fields_and_gets_the_history_after_the_system_turn() -> None:
    req = OpenAIDialect().decode_request(openai_request(), {})
    full = with_history(req, HISTORY)
    assert full.raw["seed"] == 7 and full.raw["max_completion_tokens"] == 50
    assert [m["role"] for m in full.raw["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert full.raw["messages"][2]["tool_calls"][0]["id"] == "call_1"
    assert full.raw["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "rain"}
    assert full.messages == (*HISTORY, Message("user", (TextBlock("and now?"),)))
    assert estimate_input_tokens(full) > estimate_input_tokens(req)
    assert len(req.raw["messages"]) == 2  # the caller's decoded body is not changed


def test_anthropic_body_keeps_its_fields_and_gets_the_history() -> None:
    body = (
        b'{"model": "m", "max_tokens": 50, "context_management": {"edits": []},'
        b' "system": "be kind", "messages": [{"role": "user", "content": "and now?"}]}'
    )
    req = AnthropicDialect().decode_request(body, {})
    full = with_history(req, HISTORY)
    assert full.raw["context_management"] == {"edits": []}
    wire = full.raw["messages"]
    assert [m["role"] for m in wire] == ["user", "assistant", "user", "assistant", "user"]
    assert wire[1]["content"][1] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "w",
        "input": {"city": "Oslo"},
    }
    assert wire[2]["content"][0]["type"] == "tool_result"
    assert wire[-1] == {"role": "user", "content": "and now?"}
