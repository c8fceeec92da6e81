"""Decoding Anthropic Messages requests: Claude Code's shapes, every field, every failure path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.core.errors import InvalidRequestError
from relaygate.core.json_depth import MAX_DEPTH
from relaygate.core.types import (
    ImageBlock,
    RedactedThinkingBlock,
    ResponseFormat,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.providers.base import UpstreamTarget
from relaygate.providers.openai import OpenAIProvider

FIXTURES = Path(__file__).parents[3] / "fixtures" / "anthropic"
HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "x-api-key": "rg-secret",
}
dialect = AnthropicDialect()


def decode(body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return dialect.decode_request(orjson.dumps(body), headers or {})


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_claude_code_turn_two() -> None:
    raw = (FIXTURES / "claude_code_request.json").read_bytes()
    req = dialect.decode_request(raw, HEADERS)
    assert req.dialect == "anthropic"
    assert req.model == "claude-opus-5-5"
    assert req.max_tokens == 128000
    assert req.stream is True
    assert [m.role for m in req.messages] == ["user", "system", "assistant", "user"]
    assert req.messages[1].content == (
        TextBlock("Tools available this turn: Bash, Read. Prefer Bash for shell commands."),
    )
    thinking, text, tool_use = req.messages[2].content
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.signature is not None
    assert thinking.signature.startswith("EqQBCkgIBxAB")
    assert text == TextBlock("I'll run that.")
    assert tool_use == ToolUseBlock(
        "toolu_01A09q90qw90lq917835lq9", "Bash", {"command": "echo hi", "description": "Print hi"}
    )
    (result,) = req.messages[3].content
    assert result == ToolResultBlock(
        "toolu_01A09q90qw90lq917835lq9",
        (TextBlock("hi"),),
        is_error=False,
        cache_control={"type": "ephemeral"},
    )
    assert len(req.system) == 3
    assert req.system[0].cache_control is None
    assert req.system[1].cache_control == {"type": "ephemeral"}
    deferred = req.tools[2]
    assert deferred.name == "DeferredToolPlaceholder"
    assert deferred.extra == {"defer_loading": True}
    assert req.tools[0].extra == {}
    assert req.thinking == {"type": "adaptive", "display": "omitted"}
    assert req.metadata is not None
    assert req.user == req.metadata["user_id"]
    assert req.raw == orjson.loads(raw)
    assert req.extra_headers == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    }


def test_claude_code_turn_one_system_blocks_with_cache_control() -> None:
    req = dialect.decode_request((FIXTURES / "claude_code_request_turn1.json").read_bytes(), {})
    assert req.messages[1].role == "system"
    assert req.messages[1].content == (
        TextBlock("Tools available this turn: Bash, Read.", {"type": "ephemeral"}),
    )
    assert req.extra_headers == {}


def test_string_system_and_sampling_fields() -> None:
    req = decode(
        minimal(
            system="Be brief.",
            temperature=0,
            top_p=0.9,
            top_k=5,
            stop_sequences=["END", "STOP"],
            tool_choice={"type": "tool", "name": "Bash", "disable_parallel_tool_use": True},
        )
    )
    assert req.system == (TextBlock("Be brief."),)
    assert (req.temperature, req.top_p, req.top_k) == (0.0, 0.9, 5)
    assert req.stop == ("END", "STOP")
    assert req.tool_choice == ToolChoice("tool", "Bash", disable_parallel=True)
    assert req.stream is False
    assert req.messages[0].content == (TextBlock("hi"),)


@pytest.mark.parametrize("kind", ["auto", "any", "none"])
def test_tool_choice_kinds(kind: str) -> None:
    assert decode(minimal(tool_choice={"type": kind})).tool_choice == ToolChoice(kind)  # type: ignore[arg-type]


def test_images_and_thinking_blocks() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
        {"type": "redacted_thinking", "data": "EmwK"},
        {"type": "thinking", "thinking": "hmm"},
        {"type": "text", "text": "look", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    req = decode(minimal(messages=[{"role": "user", "content": content}]))
    assert req.messages[0].content == (
        ImageBlock(media_type="image/png", data="iVBO"),
        ImageBlock(url="https://example.com/a.jpg"),
        RedactedThinkingBlock("EmwK"),
        ThinkingBlock("hmm", None),
        TextBlock("look", {"type": "ephemeral", "ttl": "1h"}),
    )


def test_tool_result_block_content_and_error_flag() -> None:
    block = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "is_error": True,
        "content": [
            {"type": "text", "text": "boom"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/gif", "data": "R0"},
            },
            {"type": "search_result", "source": "s", "title": "t", "content": []},
        ],
    }
    req = decode(minimal(messages=[{"role": "user", "content": [block]}]))
    assert req.messages[0].content == (
        ToolResultBlock(
            "t1", (TextBlock("boom"), ImageBlock(media_type="image/gif", data="R0")), is_error=True
        ),
    )
    empty = {"type": "tool_result", "tool_use_id": "t2"}
    req = decode(minimal(messages=[{"role": "user", "content": [empty]}]))
    assert req.messages[0].content == (ToolResultBlock("t2", ()),)


def test_unknown_block_types_are_kept_only_in_raw() -> None:
    doc = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf"}}
    body = minimal(messages=[{"role": "user", "content": [doc, {"type": "text", "text": "sum"}]}])
    req = decode(body)
    assert req.messages[0].content == (TextBlock("sum"),)
    assert req.raw["messages"][0]["content"][0] == doc


def test_server_tool_without_input_schema() -> None:
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    (decoded,) = decode(minimal(tools=[tool])).tools
    assert decoded.input_schema == {}
    assert decoded.extra == {"type": "web_search_20250305", "max_uses": 3}


def test_structured_output_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    req = decode(minimal(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert req.response_format == ResponseFormat("json_schema", schema=schema, strict=True)
    assert decode(minimal(output_config={"effort": "high"})).response_format is None


def test_count_tokens_needs_no_max_tokens() -> None:
    raw = (FIXTURES / "count_tokens_request.json").read_bytes()
    req = dialect.decode_count_tokens(raw, HEADERS)
    assert req.max_tokens is None
    assert req.tools[0].name == "Bash"
    assert req.extra_headers["anthropic-beta"].startswith("claude-code")
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        dialect.decode_request(raw, HEADERS)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 1, "messages": []}, "model"),
        ({"model": "", "max_tokens": 1, "messages": []}, "model"),
        ({"model": "m", "messages": []}, "max_tokens"),
        ({"model": "m", "max_tokens": 0, "messages": []}, "max_tokens"),
        ({"model": "m", "max_tokens": True, "messages": []}, "max_tokens"),
        ({"model": "m", "max_tokens": "5", "messages": []}, "max_tokens"),
        ({"model": "m", "max_tokens": 1}, "messages"),
        ({"model": "m", "max_tokens": 1, "messages": {}}, "messages"),
        ({"model": "m", "max_tokens": 1, "messages": ["hi"]}, "messages[0]"),
        (
            {"model": "m", "max_tokens": 1, "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].role",
        ),
        (
            {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
        ),
        (
            {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [5]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": [{"text": "x"}]}],
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}],
            },
            "messages[0].content[0].text",
        ),
        (
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "a", "cache_control": "x"}],
                    }
                ],
            },
            "messages[0].content[0].cache_control",
        ),
        (
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "n", "input": "{}"}],
                    }
                ],
            },
            "messages[0].content[0].input",
        ),
        (
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}],
                    }
                ],
            },
            "messages[0].content[0].is_error",
        ),
        (
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "thinking", "thinking": "x", "signature": 3}],
                    }
                ],
            },
            "messages[0].content[0].signature",
        ),
        (
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}],
            },
            "messages[0].content[0].source",
        ),
        ({"model": "m", "max_tokens": 1, "messages": [], "system": 1}, "system"),
        (
            {"model": "m", "max_tokens": 1, "messages": [], "system": [{"type": "image"}]},
            "system[0]",
        ),
        ({"model": "m", "max_tokens": 1, "messages": [], "temperature": "hot"}, "temperature"),
        ({"model": "m", "max_tokens": 1, "messages": [], "top_k": 1.5}, "top_k"),
        ({"model": "m", "max_tokens": 1, "messages": [], "stream": "yes"}, "stream"),
        (
            {"model": "m", "max_tokens": 1, "messages": [], "stop_sequences": "END"},
            "stop_sequences",
        ),
        ({"model": "m", "max_tokens": 1, "messages": [], "tools": {}}, "tools"),
        (
            {"model": "m", "max_tokens": 1, "messages": [], "tools": [{"name": "x"}]},
            "tools[0].input_schema",
        ),
        (
            {"model": "m", "max_tokens": 1, "messages": [], "tools": [{"input_schema": {}}]},
            "tools[0].name",
        ),
        (
            {"model": "m", "max_tokens": 1, "messages": [], "tool_choice": {"type": "some"}},
            "tool_choice",
        ),
        (
            {"model": "m", "max_tokens": 1, "messages": [], "tool_choice": {"type": "tool"}},
            "tool_choice.name",
        ),
        ({"model": "m", "max_tokens": 1, "messages": [], "thinking": "on"}, "thinking"),
        # Found by tests/fuzz: JSON arrays and objects are unhashable; they used to be 500s.
        (
            {"model": "m", "max_tokens": 1, "messages": [{"role": [], "content": "hi"}]},
            "messages[0].role",
        ),
        (
            {"model": "m", "max_tokens": 1, "messages": [{"role": {}, "content": "hi"}]},
            "messages[0].role",
        ),
        (
            {"model": "m", "max_tokens": 1, "messages": [], "tool_choice": {"type": ["auto"]}},
            "tool_choice",
        ),
        ({"model": "m", "max_tokens": 1, "messages": [], "metadata": []}, "metadata"),
    ],
)
def test_invalid_fields_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode(body)
    assert caught.value.param == param
    assert caught.value.message.startswith(param + ":")
    assert caught.value.status == 400


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b'"text"'])
def test_malformed_body(body: bytes) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        dialect.decode_request(body, {})
    assert caught.value.param == "body"


def nested(depth: int) -> str:
    """A JSON object ``depth`` levels deep (orjson parses up to 1,024, re-serializes 254)."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def deep_body(tools: str = "[]", **raw_fields: str) -> bytes:
    extra = "".join(f',"{key}":{value}' for key, value in raw_fields.items())
    return (
        '{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],'
        f'"tools":{tools}{extra}}}'
    ).encode()


@pytest.mark.parametrize("depth", [255, 600, 1020])
def test_tool_schema_nested_too_deep_is_a_400_naming_the_field(depth: int) -> None:
    body = deep_body(f'[{{"name":"t","input_schema":{nested(depth)}}}]')
    with pytest.raises(InvalidRequestError) as info:
        dialect.decode_request(body, {})
    assert info.value.param is not None
    assert info.value.param.startswith("tools[0].input_schema.a")
    assert "nested" in info.value.message


def test_unknown_field_nested_too_deep_is_refused_before_passthrough() -> None:
    with pytest.raises(InvalidRequestError) as info:
        dialect.decode_request(deep_body(context_management=nested(400)), {})
    assert info.value.param is not None and info.value.param.startswith("context_management")


def test_count_tokens_refuses_too_deep_json_too() -> None:
    body = deep_body(f'[{{"name":"t","input_schema":{nested(300)}}}]')
    with pytest.raises(InvalidRequestError):
        dialect.decode_count_tokens(body, {})


def test_deepest_accepted_schema_still_translates_for_an_openai_upstream() -> None:
    # The body is 3 levels above the schema (body, tools, tool); the OpenAI wire puts it 4 deep.
    req = dialect.decode_request(
        deep_body(f'[{{"name":"t","input_schema":{nested(MAX_DEPTH - 3)}}}]'), {}
    )
    target = UpstreamTarget(base_url="http://x.test/v1", model="m")
    assert OpenAIProvider().build_request(req, target, "r").body
    with pytest.raises(InvalidRequestError):
        dialect.decode_request(
            deep_body(f'[{{"name":"t","input_schema":{nested(MAX_DEPTH - 2)}}}]'), {}
        )


def test_a_text_document_becomes_text_so_translation_loses_nothing() -> None:
    document = {
        "type": "document",
        "title": "Return policy",
        "source": {"type": "text", "media_type": "text/plain", "data": "30 days, receipt."},
    }
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf"}}
    req = decode(minimal(messages=[{"role": "user", "content": [document, pdf]}]))
    assert req.messages[0].content == (TextBlock("Return policy\n\n30 days, receipt."),)


def test_a_document_without_a_source_object_names_the_field() -> None:
    bad = {"role": "user", "content": [{"type": "document", "source": "x"}]}
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.content\[0\]\.source"):
        decode(minimal(messages=[bad]))
