"""Valid Anthropic Messages (and count_tokens) request bodies, built from the real wire shapes."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from relaygate.mock.engine import thinking_signature
from tests.fuzz.common import (
    PNG_BASE64,
    json_objects,
    max_tokens,
    models,
    object_schemas,
    optional,
    probabilities,
    short_ids,
    solid_text,
    solid_texts,
    stops,
    tool_names,
)

_EPHEMERAL = {"type": "ephemeral"}


@st.composite
def _text_block(draw: st.DrawFn) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": draw(solid_texts)}
    optional(draw, block, "cache_control", st.just(_EPHEMERAL))
    return block


_image_block = st.sampled_from(
    [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]
)
_document_block = st.builds(
    lambda text: {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": text},
        "title": "notes",
    },
    solid_text,
)
# Translated to an OpenAI-wire upstream, a document block is dropped (content.py: block types the
# neutral model has no room for). A message holding nothing else is then dropped too, and the
# upstream refuses an empty conversation with a misleading 400 (reported, not fixed here): so a
# document always comes after other content.
_user_content = st.one_of(
    solid_texts,
    st.builds(
        lambda blocks, docs: blocks + docs,
        st.lists(st.one_of(_text_block(), _image_block), min_size=1, max_size=3),
        st.lists(_document_block, max_size=1),
    ),
)


@st.composite
def _thinking_blocks(draw: st.DrawFn) -> list[dict[str, Any]]:
    """What Claude Code sends back from an earlier turn: signed thinking, or redacted thinking.
    The signature is the mock's own (it checks it, as Anthropic's API does)."""
    thought = draw(solid_text)
    signed = {"type": "thinking", "thinking": thought, "signature": thinking_signature(thought)}
    redacted = {"type": "redacted_thinking", "data": "c2VjcmV0"}
    return draw(st.sampled_from([[], [signed], [redacted]]))


@st.composite
def _tool_round(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An assistant turn with tool_use blocks, then the user turn carrying their results."""
    ids = draw(st.lists(short_ids, min_size=1, max_size=3, unique=True))
    uses = [
        {
            "type": "tool_use",
            "id": f"toolu_{i}",
            "name": draw(tool_names),
            "input": draw(json_objects),
        }
        for i in ids
    ]
    lead = [{"type": "text", "text": draw(solid_text)}] if draw(st.booleans()) else []
    results: list[dict[str, Any]] = []
    for use in uses:
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": use["id"]}
        optional(
            draw, result, "content", st.one_of(solid_text, st.lists(_text_block(), max_size=2))
        )
        optional(draw, result, "is_error", st.booleans())
        results.append(result)
    if draw(st.booleans()):
        results.append({"type": "text", "text": draw(solid_texts)})
    thinking = draw(_thinking_blocks())
    assistant = {"role": "assistant", "content": thinking + lead + uses}
    return [assistant, {"role": "user", "content": results}]


@st.composite
def _messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 2))):
        messages.append({"role": "user", "content": draw(_user_content)})
        if draw(st.booleans()):
            messages += draw(_tool_round())
            messages.append({"role": "assistant", "content": draw(solid_text)})
        else:
            messages.append({"role": "assistant", "content": draw(solid_text)})
    messages.append({"role": "user", "content": draw(_user_content)})
    return messages


@st.composite
def _tools(draw: st.DrawFn) -> list[dict[str, Any]]:
    tools = []
    for name in draw(st.lists(tool_names, min_size=1, max_size=3, unique=True)):
        tool: dict[str, Any] = {"name": name, "input_schema": draw(object_schemas())}
        optional(draw, tool, "description", solid_text)
        optional(draw, tool, "cache_control", st.just(_EPHEMERAL))
        tools.append(tool)
    if draw(st.booleans()):
        tools.append(draw(_SERVER_TOOLS))
    return tools


# Server tools carry a versioned type and no input schema.
_SERVER_TOOLS = st.sampled_from(
    [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250429", "name": "str_replace_based_edit_tool"},
    ]
)


_system = st.one_of(solid_text, st.lists(_text_block(), min_size=1, max_size=2))


@st.composite
def _tool_choice(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["auto", "any", "tool", "none"]))
    choice: dict[str, Any] = {"type": kind}
    if kind == "tool":
        choice["name"] = draw(st.sampled_from(names))
    if kind != "none":
        optional(draw, choice, "disable_parallel_tool_use", st.booleans())
    return choice


@st.composite
def message_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A request body the real Anthropic API would accept (model names aside)."""
    body: dict[str, Any] = {
        "model": draw(models),
        "max_tokens": draw(max_tokens),
        "messages": draw(_messages()),
    }
    optional(draw, body, "system", _system)
    if draw(st.booleans()):
        body["tools"] = draw(_tools())
        optional(draw, body, "tool_choice", _tool_choice([t["name"] for t in body["tools"]]))
    optional(draw, body, "stream", st.booleans())
    optional(draw, body, "temperature", probabilities)
    optional(draw, body, "top_p", probabilities)
    optional(draw, body, "top_k", st.integers(1, 500))
    optional(draw, body, "stop_sequences", stops.filter(lambda s: isinstance(s, list)))
    optional(draw, body, "metadata", st.builds(lambda u: {"user_id": u}, short_ids))
    if draw(st.booleans()):
        budget = draw(st.integers(1024, 2048))
        body["max_tokens"] = budget + draw(max_tokens)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return body


@st.composite
def count_tokens_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A ``/v1/messages/count_tokens`` body: no max_tokens, no stream."""
    body: dict[str, Any] = {"model": draw(models), "messages": draw(_messages())}
    optional(draw, body, "system", _system)
    if draw(st.booleans()):
        body["tools"] = draw(_tools())
    optional(draw, body, "thinking", st.just({"type": "enabled", "budget_tokens": 1024}))
    return body
