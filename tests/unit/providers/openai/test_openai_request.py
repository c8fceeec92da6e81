"""Building Chat Completions requests: passthrough for OpenAI callers, translation for others."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.core.types import (
    ChatRequest,
    ImageBlock,
    Message,
    ResponseFormat,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from relaygate.providers.base import UpstreamTarget
from relaygate.providers.openai import OpenAIProvider

TARGET = UpstreamTarget(
    base_url="https://api.example.test/v1/",
    model="gpt-4o-2024-08-06",
    api_key="sk-upstream",
    headers={"x-extra": "1"},
)


def build(req: ChatRequest, target: UpstreamTarget = TARGET) -> tuple[Any, dict[str, Any]]:
    up = OpenAIProvider().build_request(req, target, "req_7")
    return up, orjson.loads(up.body)


def anthropic_request(**fields: Any) -> ChatRequest:
    base: dict[str, Any] = {
        "dialect": "anthropic",
        "model": "claude-alias",
        "messages": (Message("user", (TextBlock("hi"),)),),
    }
    return ChatRequest(**{**base, **fields})


def test_url_and_headers() -> None:
    up, _ = build(anthropic_request())
    assert up.method == "POST"
    assert up.url == "https://api.example.test/v1/chat/completions"
    assert dict(up.headers) == {
        "content-type": "application/json",
        "x-request-id": "req_7",
        "authorization": "Bearer sk-upstream",
        "x-extra": "1",
    }
    assert not up.stream


def test_no_key_no_authorization() -> None:
    up, _ = build(anthropic_request(), UpstreamTarget(base_url="http://vllm:8000/v1", model="m"))
    assert "authorization" not in up.headers
    assert up.url == "http://vllm:8000/v1/chat/completions"


def test_passthrough_replaces_model_only() -> None:
    raw = {
        "model": "alias",
        "messages": [{"role": "user", "content": "x"}],
        "seed": 3,
        "logit_bias": {"1": 2},
        "future_field": {"a": [1]},
    }
    req = ChatRequest(dialect="openai", model="alias", messages=(), raw=raw)
    up, body = build(req)
    assert body == {**raw, "model": "gpt-4o-2024-08-06"}
    assert raw["model"] == "alias"  # the caller's raw request is not mutated
    assert not up.stream


def test_passthrough_stream_forces_usage() -> None:
    raw = {"model": "alias", "messages": [], "stream": True}
    req = ChatRequest(dialect="openai", model="alias", messages=(), stream=True, raw=raw)
    up, body = build(req)
    assert up.stream
    assert body["stream_options"] == {"include_usage": True}
    assert "stream_options" not in raw

    raw2 = {
        "model": "a",
        "messages": [],
        "stream": True,
        "stream_options": {"include_usage": False, "include_obfuscation": False},
    }
    req2 = ChatRequest(dialect="openai", model="a", messages=(), stream=True, raw=raw2)
    _, body2 = build(req2)
    assert body2["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert raw2["stream_options"] == {"include_usage": False, "include_obfuscation": False}


def test_translate_minimal() -> None:
    _, body = build(anthropic_request())
    assert body == {"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "hi"}]}


def test_translate_sampling_and_drops_anthropic_fields() -> None:
    _, body = build(
        anthropic_request(
            max_tokens=300,
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop=("\n\nHuman:",),
            thinking={"type": "enabled", "budget_tokens": 1000},
            metadata={"user_id": "u"},
            user="u1",
            stream=True,
            raw={"context_management": {}, "output_config": {}},
        )
    )
    assert body == {
        "model": "gpt-4o-2024-08-06",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\nHuman:"],
        "user": "u1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_translate_conversation() -> None:
    req = anthropic_request(
        system=(
            TextBlock("You are terse.", cache_control={"type": "ephemeral"}),
            TextBlock("Answer in English."),
        ),
        messages=(
            Message(
                "user",
                (
                    TextBlock("Look", cache_control={"type": "ephemeral"}),
                    ImageBlock(media_type="image/png", data="AAAA"),
                    ImageBlock(url="https://img.test/x.png"),
                ),
            ),
            Message(
                "assistant",
                (
                    ThinkingBlock("secret", signature="sig"),
                    TextBlock("Checking."),
                    ToolUseBlock("toolu_1", "weather", {"city": "Paris"}),
                    ToolUseBlock("toolu_2", "time", {}),
                ),
            ),
            Message(
                "user",
                (
                    ToolResultBlock("toolu_1", (TextBlock("sunny"), TextBlock("22C"))),
                    ToolResultBlock(
                        "toolu_2",
                        (TextBlock("noon"), ImageBlock(media_type="image/jpeg", data="BBBB")),
                    ),
                    TextBlock("And tomorrow?"),
                ),
            ),
            Message("system", (TextBlock("Be careful."),)),
            Message("assistant", (ToolUseBlock("toolu_3", "noop", {}),)),
            Message("user", (ToolResultBlock("toolu_3", ()),)),
            Message("assistant", ()),
        ),
    )
    _, body = build(req)
    assert body["messages"] == [
        {"role": "system", "content": "You are terse.\n\nAnswer in English."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://img.test/x.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny\n\n22C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "noon"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,BBBB"}},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
        {"role": "system", "content": "Be careful."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_3",
                    "type": "function",
                    "function": {"name": "noop", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_3", "content": ""},
        {"role": "assistant", "content": ""},
    ]
    assert "cache_control" not in up_text(req)


def up_text(req: ChatRequest) -> str:
    return OpenAIProvider().build_request(req, TARGET, "r").body.decode()


def test_translate_tools_and_choice() -> None:
    req = anthropic_request(
        tools=(
            Tool(
                "weather",
                "Current weather",
                {"type": "object", "properties": {}},
                {"cache_control": {"type": "ephemeral"}},
            ),
            Tool("bare", None, {}),
        ),
        tool_choice=ToolChoice("tool", name="weather", disable_parallel=True),
    )
    _, body = build(req)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {}},
            },
        },
        {
            "type": "function",
            "function": {"name": "bare", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert body["parallel_tool_calls"] is False


def test_tool_choice_mapping() -> None:
    tools = (Tool("f", None, {"type": "object"}),)
    for choice, wire in [
        (ToolChoice("auto"), "auto"),
        (ToolChoice("any"), "required"),
        (ToolChoice("none"), "none"),
    ]:
        _, body = build(anthropic_request(tools=tools, tool_choice=choice))
        assert body["tool_choice"] == wire
        assert "parallel_tool_calls" not in body


def test_tool_choice_without_tools_is_dropped() -> None:
    _, body = build(anthropic_request(tool_choice=ToolChoice("auto", disable_parallel=True)))
    assert "tool_choice" not in body
    assert "parallel_tool_calls" not in body


def test_response_format_mapping() -> None:
    _, body = build(anthropic_request(response_format=ResponseFormat("json_object")))
    assert body["response_format"] == {"type": "json_object"}
    _, body = build(
        anthropic_request(
            response_format=ResponseFormat(
                "json_schema", name="person", schema={"type": "object"}, strict=True
            )
        )
    )
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": {"type": "object"}, "strict": True},
    }
    _, body = build(anthropic_request(response_format=ResponseFormat("json_schema")))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {}},
    }


def test_openai_request_without_raw_is_translated() -> None:
    req = ChatRequest(
        dialect="openai", model="m", messages=(Message("user", (TextBlock("x"),)),), max_tokens=5
    )
    _, body = build(req)
    assert body == {
        "model": "gpt-4o-2024-08-06",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 5,
    }


def test_count_tokens_unsupported() -> None:
    provider = OpenAIProvider()
    assert provider.dialect == "openai"
    assert provider.build_count_tokens(anthropic_request(), TARGET, "r") is None


def test_a_failed_tool_result_says_so_in_the_tool_message() -> None:
    req = anthropic_request(
        messages=(
            Message("user", (TextBlock("run it"),)),
            Message("assistant", (ToolUseBlock("toolu_9", "Bash", {"command": "false"}),)),
            Message(
                "user",
                (
                    ToolResultBlock("toolu_9", (TextBlock("exit status 1"),), is_error=True),
                    ToolResultBlock("toolu_8", (), is_error=True),
                ),
            ),
        )
    )
    _, body = build(req)
    tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
    assert tool_messages[0]["content"] == "Error: exit status 1"
    assert tool_messages[1]["content"] == "Error"


CLAUDE_CODE_TURN = Message(
    "user", (TextBlock("<system-reminder>Today is Monday.</system-reminder>"), TextBlock("fix it"))
)


def test_text_blocks_of_a_user_message_keep_their_boundaries() -> None:
    _, body = build(anthropic_request(messages=(CLAUDE_CODE_TURN,)))
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>Today is Monday.</system-reminder>"},
                {"type": "text", "text": "fix it"},
            ],
        }
    ]


def test_a_single_text_block_stays_a_plain_string() -> None:
    _, body = build(anthropic_request(messages=(Message("user", (TextBlock("hi"),)),)))
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_flatten_content_joins_text_blocks_for_servers_that_reject_arrays() -> None:
    target = UpstreamTarget(base_url="http://vllm:8000/v1", model="m", flatten_content=True)
    _, body = build(anthropic_request(messages=(CLAUDE_CODE_TURN,)), target)
    assert body["messages"] == [
        {
            "role": "user",
            "content": "<system-reminder>Today is Monday.</system-reminder>\n\nfix it",
        }
    ]


def reference_passthrough(req: ChatRequest, model: str) -> dict[str, Any]:
    """The relayed body as it was built before the copy was skipped when nothing changes."""
    body = dict(req.raw)
    body["model"] = model
    if req.stream:
        options = body.get("stream_options")
        if not isinstance(options, dict):
            body["stream_options"] = {"include_usage": True}
        elif options.get("include_usage") is not True:
            body["stream_options"] = {**options, "include_usage": True}
    return body


_OPTIONS = (
    st.none()
    | st.integers(-5, 5)
    | st.fixed_dictionaries(
        {},
        optional={"include_usage": st.none() | st.booleans() | st.integers(0, 1), "x": st.just(1)},
    )
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["m", "other"]),
    st.booleans(),
    st.fixed_dictionaries(
        {"messages": st.just([{"role": "user", "content": "x"}])},
        optional={
            "model": st.sampled_from(["m", "other"]),
            "stream_options": _OPTIONS,
            "seed": st.integers(0, 2**63 - 1),
        },
    ),
)
def test_passthrough_bytes_as_before(model: str, stream: bool, raw: dict[str, Any]) -> None:
    kept = orjson.dumps(raw)
    req = ChatRequest(dialect="openai", model="x", messages=(), stream=stream, raw=raw)
    target = UpstreamTarget(base_url="http://up/v1", model=model)
    up = OpenAIProvider().build_request(req, target, "r")
    assert up.body == orjson.dumps(reference_passthrough(req, model))
    assert orjson.dumps(raw) == kept  # never changed: another deployment may relay it again
