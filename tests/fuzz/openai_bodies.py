"""Valid OpenAI Chat Completions request bodies, built from the real wire shapes."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from tests.fuzz.common import (
    image_urls,
    json_objects,
    max_tokens,
    models,
    object_schemas,
    optional,
    plain_text,
    probabilities,
    short_ids,
    stops,
    temperatures,
    texts,
    tool_names,
)

_text_part = st.builds(lambda t: {"type": "text", "text": t}, texts)
_image_part = st.builds(
    lambda url, detail: {"type": "image_url", "image_url": {"url": url, **detail}},
    image_urls,
    st.sampled_from([{}, {"detail": "low"}, {"detail": "auto"}]),
)
_user_content = st.one_of(
    texts, st.lists(st.one_of(_text_part, _image_part), min_size=1, max_size=3)
)
_system_content = st.one_of(plain_text, st.lists(_text_part, min_size=1, max_size=2))


@st.composite
def _tool_round(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An assistant turn calling tools and the tool messages answering each call."""
    ids = draw(st.lists(short_ids, min_size=1, max_size=3, unique=True))
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {
                "name": draw(tool_names),
                "arguments": draw(
                    st.one_of(
                        st.builds(lambda o: orjson.dumps(o).decode(), json_objects),
                        st.sampled_from(["", "{}", "not json", "[1]"]),
                    )
                ),
            },
        }
        for i in ids
    ]
    assistant: dict[str, Any] = {"role": "assistant", "tool_calls": calls}
    assistant["content"] = draw(st.one_of(st.none(), plain_text))
    results = [
        {
            "role": "tool",
            "tool_call_id": call["id"],
            "content": draw(st.one_of(plain_text, st.lists(_text_part, max_size=2))),
        }
        for call in calls
    ]
    return [assistant, *results]


@st.composite
def _messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        role = draw(st.sampled_from(["system", "developer"]))
        messages.append({"role": role, "content": draw(_system_content)})
    for _ in range(draw(st.integers(0, 2))):
        messages.append({"role": "user", "content": draw(_user_content)})
        if draw(st.booleans()):
            messages += draw(_tool_round())
        else:
            reply = draw(st.sampled_from(["content", "refusal", "parts"]))
            if reply == "refusal":
                messages.append({"role": "assistant", "content": None, "refusal": "no"})
            elif reply == "parts":
                messages.append({"role": "assistant", "content": draw(st.lists(_text_part))})
            else:
                messages.append({"role": "assistant", "content": draw(plain_text)})
    messages.append({"role": "user", "content": draw(_user_content)})
    if draw(st.booleans()):
        messages[-1]["name"] = draw(short_ids)
    return messages


def _tool(name: str, description: str | None, schema: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "parameters": schema}
    if description is not None:
        function["description"] = description
    return {"type": "function", "function": function}


@st.composite
def chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A request body the real OpenAI API would accept (model names aside)."""
    body: dict[str, Any] = {"model": draw(models), "messages": draw(_messages())}
    names = draw(st.lists(tool_names, max_size=3, unique=True))
    if names:
        body["tools"] = [
            _tool(n, draw(st.one_of(st.none(), plain_text)), draw(object_schemas())) for n in names
        ]
        named = {"type": "function", "function": {"name": draw(st.sampled_from(names))}}
        optional(draw, body, "tool_choice", st.sampled_from(["auto", "none", "required", named]))
        optional(draw, body, "parallel_tool_calls", st.booleans())
    stream = draw(st.booleans())
    if stream:
        body["stream"] = True
        optional(
            draw, body, "stream_options", st.builds(lambda b: {"include_usage": b}, st.booleans())
        )
    elif draw(st.booleans()):
        body["stream"] = False
    token_field = draw(st.sampled_from(["max_tokens", "max_completion_tokens", None]))
    if token_field is not None:
        body[token_field] = draw(max_tokens)
    optional(draw, body, "temperature", temperatures)
    optional(draw, body, "top_p", probabilities)
    optional(draw, body, "stop", stops)
    optional(draw, body, "n", st.just(1))
    optional(draw, body, "seed", st.integers(0, 2**31))
    optional(draw, body, "user", plain_text)
    optional(draw, body, "presence_penalty", st.floats(-2, 2))
    optional(draw, body, "metadata", st.dictionaries(short_ids, plain_text, max_size=3))
    optional(draw, body, "response_format", _response_formats())
    optional(draw, body, "frequency_penalty", st.floats(-2, 2))
    optional(draw, body, "reasoning_effort", st.sampled_from(["low", "medium", "high"]))
    optional(draw, body, "store", st.booleans())
    if draw(st.booleans()):
        body["logprobs"] = True
        body["top_logprobs"] = draw(st.integers(0, 5))
    return body


def _response_formats() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.just({"type": "text"}),
        st.just({"type": "json_object"}),
        st.builds(
            lambda schema, strict: {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": strict},
            },
            object_schemas(),
            st.booleans(),
        ),
    )
