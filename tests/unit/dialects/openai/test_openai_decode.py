"""OpenAI request decoding: the neutral model it yields and the 400s it raises."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaygate.core.errors import InvalidRequestError
from relaygate.core.types import (
    ChatRequest,
    ImageBlock,
    Message,
    ResponseFormat,
    TextBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from relaygate.dialects.openai import OpenAIDialect
from relaygate.dialects.openai.decode import decode_request


def decode(**fields: Any) -> Any:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields}
    return decode_request(orjson.dumps(body))


def error(body: Any) -> InvalidRequestError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(InvalidRequestError) as info:
        decode_request(raw)
    return info.value


def test_minimal_request() -> None:
    req = decode()
    assert req.dialect == "openai"
    assert req.model == "gpt-4o"
    assert req.messages == (Message("user", (TextBlock("hi"),)),)
    assert req.system == ()
    assert not req.stream
    assert not req.include_usage
    assert req.tool_choice is None
    assert req.raw["model"] == "gpt-4o"


def test_raw_keeps_unknown_fields() -> None:
    req = decode(seed=7, logit_bias={"50256": -100}, reasoning_effort="low")
    assert req.raw["seed"] == 7
    assert req.raw["reasoning_effort"] == "low"


def test_dialect_object_decodes() -> None:
    dialect = OpenAIDialect()
    assert dialect.name == "openai"
    req = dialect.decode_request(b'{"model":"m","messages":[{"role":"user","content":"x"}]}', {})
    assert req.model == "m"


def test_system_and_developer_become_system_blocks() -> None:
    req = decode(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "Late note."},
        ]
    )
    assert req.system == (TextBlock("Be brief."), TextBlock("Use French."), TextBlock("Late note."))
    assert [m.role for m in req.messages] == ["user"]


def test_content_parts_and_images() -> None:
    req = decode(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x.test/a.jpg", "detail": "low"},
                    },
                ],
            }
        ]
    )
    assert req.messages[0].content == (
        TextBlock("What is this?"),
        ImageBlock(media_type="image/png", data="iVBORw0K"),
        ImageBlock(url="https://x.test/a.jpg"),
    )


def test_assistant_tool_calls_and_tool_results() -> None:
    req = decode(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"city":"Paris"}'},
                    },
                    {"id": "c2", "type": "function", "function": {"name": "w", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "rain"}]},
            {"role": "user", "content": "thanks"},
        ]
    )
    assistant, results, last = req.messages[1], req.messages[2], req.messages[3]
    assert assistant == Message(
        "assistant",
        (ToolUseBlock("c1", "w", {"city": "Paris"}), ToolUseBlock("c2", "w", {})),
    )
    assert results == Message(
        "user",
        (
            ToolResultBlock("c1", (TextBlock("sunny"),)),
            ToolResultBlock("c2", (TextBlock("rain"),)),
        ),
    )
    assert last == Message("user", (TextBlock("thanks"),))


def test_trailing_tool_messages_are_flushed() -> None:
    req = decode(
        messages=[
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c", "content": "ok"},
        ]
    )
    assert req.messages[0].content == (TextBlock("calling"), ToolUseBlock("c", "f", {}))
    assert req.messages[1] == Message("user", (ToolResultBlock("c", (TextBlock("ok"),)),))


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_non_object_arguments_kept_raw(arguments: str) -> None:
    req = decode(
        messages=[
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "f", "arguments": arguments},
                    }
                ],
            },
        ]
    )
    assert req.messages[0].content == (ToolUseBlock("c", "f", {"_raw": arguments}),)


def test_sampling_fields() -> None:
    req = decode(
        max_tokens=100, temperature=0, top_p=0.5, stop="END", user="u1", metadata={"k": "v"}
    )
    assert req.max_tokens == 100
    assert req.temperature == 0.0
    assert req.top_p == 0.5
    assert req.stop == ("END",)
    assert req.user == "u1"
    assert req.metadata == {"k": "v"}


def test_every_field_lands_in_its_place() -> None:
    # decode_head builds the request positionally: each field must reach its own name.
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    fields: dict[str, Any] = {
        "max_tokens": 100,
        "temperature": 0.25,
        "top_p": 0.5,
        "stop": ["END"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [tool],
        "tool_choice": "required",
        "response_format": {"type": "json_object"},
        "metadata": {"k": "v"},
        "user": "u1",
    }
    req = decode(**fields)
    assert req == ChatRequest(
        dialect="openai",
        model="gpt-4o",
        messages=(Message("user", (TextBlock("hi"),)),),
        max_tokens=100,
        temperature=0.25,
        top_p=0.5,
        stop=("END",),
        stream=True,
        include_usage=True,
        tools=req.tools,
        tool_choice=ToolChoice("any"),
        response_format=ResponseFormat("json_object"),
        metadata={"k": "v"},
        user="u1",
        raw={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields},
    )
    assert [t.name for t in req.tools] == ["f"]


def test_max_completion_tokens_wins() -> None:
    assert decode(max_tokens=10, max_completion_tokens=20).max_tokens == 20


def test_stop_list_and_null() -> None:
    assert decode(stop=["a", "b"]).stop == ("a", "b")
    assert decode(stop=None).stop == ()


def test_stream_and_include_usage() -> None:
    req = decode(stream=True, stream_options={"include_usage": True})
    assert req.stream
    assert req.include_usage
    assert not decode(stream=True).include_usage
    assert not decode(stream=False, stream_options={"include_usage": True}).include_usage


def test_tools_and_tool_choice() -> None:
    req = decode(
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather now",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "strict": True,
                },
            },
            {"type": "function", "function": {"name": "noop"}},
        ],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    assert req.tools[0] == Tool(
        "get_weather",
        "Weather now",
        {"type": "object", "properties": {"city": {"type": "string"}}},
        {"strict": True},
    )
    assert req.tools[1] == Tool("noop", None, {"type": "object", "properties": {}})
    assert req.tool_choice == ToolChoice("tool", name="get_weather", disable_parallel=True)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("auto", ToolChoice("auto")),
        ("required", ToolChoice("any")),
        ("none", ToolChoice("none")),
        (None, None),
    ],
)
def test_tool_choice_strings(wire: Any, expected: ToolChoice | None) -> None:
    assert decode(tool_choice=wire).tool_choice == expected


def test_parallel_false_without_tool_choice() -> None:
    assert decode(parallel_tool_calls=False).tool_choice == ToolChoice(
        "auto", disable_parallel=True
    )


def test_response_formats() -> None:
    assert decode(response_format={"type": "text"}).response_format is None
    assert decode(response_format={"type": "json_object"}).response_format == ResponseFormat(
        "json_object"
    )
    fmt = decode(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": {"type": "object"}, "strict": True},
        }
    ).response_format
    assert fmt == ResponseFormat(
        "json_schema", name="person", schema={"type": "object"}, strict=True
    )


def test_n_one_is_fine() -> None:
    assert decode(n=1).model == "gpt-4o"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"n": 0}, "n"),
        ({"n": "1"}, "n"),
        ({"model": 5}, "model"),
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"messages": ["x"]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages[0].content[0].text",
        ),
        (
            {
                "messages": [
                    {
                        "role": "system",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x"}}],
                    }
                ]
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,abc"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "assistant", "tool_calls": {}}]}, "messages[0].tool_calls"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].id",
        ),
        ({"messages": [{"role": "assistant", "content": 3}]}, "messages[0].content"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": [1]}, "top_p"),
        ({"stop": [1]}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"stream": True, "stream_options": []}, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
        ({"tools": {}}, "tools"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"name": ""}}]}, "tools[0].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
            "tools[0].function.parameters",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "description": 1}}]},
            "tools[0].function.description",
        ),
        ({"tool_choice": "always"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"user": 12}, "user"),
        ({"metadata": "x"}, "metadata"),
    ],
)
def test_wrong_fields_name_the_field(fields: dict[str, Any], param: str) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields}
    err = error(body)
    assert err.param == param
    assert err.message.startswith(param)
    assert err.status == 400


def test_n_above_one_says_so() -> None:
    assert "only n=1 is supported" in error({"model": "m", "n": 3, "messages": []}).message


def test_malformed_json() -> None:
    err = error(b'{"model": "m", ')
    assert err.message.startswith("Request body is not valid JSON: ")
    assert err.param is None


def test_body_not_an_object() -> None:
    assert error(b"[1, 2]").message == "Request body must be a JSON object"


def test_missing_model() -> None:
    assert error({"messages": [{"role": "user", "content": "x"}]}).param == "model"


def nested(depth: int) -> str:
    """A JSON object ``depth`` levels deep (orjson parses up to 1,024, re-serializes 254)."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize("depth", [255, 1000])
def test_tool_parameters_nested_too_deep_are_a_400_naming_the_field(depth: int) -> None:
    tool = f'{{"type":"function","function":{{"name":"f","parameters":{nested(depth)}}}}}'
    body = f'{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"tools":[{tool}]}}'
    err = error(body.encode())
    assert err.param is not None and err.param.startswith("tools[0].function.parameters.a")


def test_unknown_field_nested_too_deep_is_refused_before_passthrough() -> None:
    body = f'{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"x":{nested(300)}}}'
    err = error(body.encode())
    assert err.param is not None and err.param.startswith("x.a")


def test_tool_call_arguments_nested_too_deep_are_a_400() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": nested(500)}}
    err = error(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c", "content": "ok"},
            ],
        }
    )
    assert err.param is not None
    assert err.param.startswith("messages[1].tool_calls[0].function.arguments")
