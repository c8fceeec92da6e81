"""The mock engine: directives, structured output, limits, and stream/whole equivalence."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaygate.core.errors import InvalidRequestError
from relaygate.core.events import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from relaygate.core.types import (
    ChatRequest,
    ChatResponse,
    ContentBlock,
    DialectName,
    FinishReason,
    Message,
    ResponseFormat,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.mock.engine import (
    GREETING,
    build_reply,
    estimate_input_tokens,
    reply_events,
    text_chunks,
)

WEATHER = Tool(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def request(
    text: str = "hello there", dialect: DialectName = "anthropic", **fields: Any
) -> ChatRequest:
    return ChatRequest(
        dialect=dialect,
        model="mock-model",
        messages=(Message("user", (TextBlock(text),)),),
        **fields,
    )


def texts(resp: ChatResponse) -> list[str]:
    return [b.text for b in resp.content if isinstance(b, TextBlock)]


def reassemble(events: list[StreamEvent]) -> ChatResponse:
    """What a client rebuilds from the stream; strict about the event order."""
    assert isinstance(events[0], MessageStart)
    assert isinstance(events[-1], MessageStop)
    start = events[0]
    blocks: dict[int, list[Any]] = {}
    open_index: int | None = None
    delta: MessageDelta | None = None
    for event in events[1:-1]:
        if isinstance(event, BlockStart):
            assert open_index is None, "blocks must not interleave"
            assert event.index == len(blocks), "indices count up from 0"
            open_index = event.index
            blocks[event.index] = [event.block, []]
        elif isinstance(event, TextDelta | ThinkingDelta | ToolArgsDelta | SignatureDelta):
            assert event.index == open_index
            blocks[event.index][1].append(event)
        elif isinstance(event, BlockStop):
            assert event.index == open_index
            open_index = None
        elif isinstance(event, MessageDelta):
            assert open_index is None
            delta = event
    assert delta is not None
    content = tuple(_block(kind, parts) for kind, parts in blocks.values())
    usage = start.usage.merged(delta.usage)
    return ChatResponse(
        start.id, start.model, content, delta.finish_reason, usage, delta.stop_sequence
    )


def _block(kind: ContentBlock, parts: list[Any]) -> ContentBlock:
    if isinstance(kind, TextBlock):
        return TextBlock("".join(p.text for p in parts))
    if isinstance(kind, ThinkingBlock):
        thinking = "".join(p.thinking for p in parts if isinstance(p, ThinkingDelta))
        signatures = [p.signature for p in parts if isinstance(p, SignatureDelta)]
        return ThinkingBlock(thinking, signatures[-1] if signatures else None)
    assert isinstance(kind, ToolUseBlock)
    assert kind.input == {}
    return ToolUseBlock(kind.id, kind.name, orjson.loads("".join(p.partial_json for p in parts)))


def test_default_reply_echoes_the_last_user_text() -> None:
    req = ChatRequest(
        dialect="openai",
        model="m",
        messages=(
            Message("user", (TextBlock("first question"),)),
            Message("assistant", (TextBlock("an answer"),)),
            Message("user", (TextBlock("second"), TextBlock("question"))),
        ),
    )
    resp = build_reply(req, 3)
    assert texts(resp) == [f"{GREETING} You said: second\nquestion"]
    assert resp.finish_reason is FinishReason.END_TURN
    assert resp.id == "chatcmpl-mock-3"
    assert resp.model == "m"
    assert resp.usage.output_tokens == len(texts(resp)[0].split())
    assert resp.usage.input_tokens == estimate_input_tokens(req) >= 1
    assert resp.usage.cache_read_tokens == 0
    assert resp.stop_sequence is None


def test_echo_is_cut_at_200_characters() -> None:
    resp = build_reply(request("x" * 500), 1)
    assert texts(resp) == [f"{GREETING} You said: {'x' * 200}"]


def test_reply_is_deterministic() -> None:
    req = request('same words mock:tool get_weather {"city": "Oslo"}', tools=(WEATHER,))
    assert build_reply(req, 5) == build_reply(req, 5)


@pytest.mark.parametrize(
    ("dialect", "tool_id"), [("anthropic", "toolu_mock_7"), ("openai", "call_mock_7")]
)
def test_tool_directive_calls_the_named_tool(dialect: DialectName, tool_id: str) -> None:
    req = request(
        'weather? mock:tool get_weather {"city": "Paris", "days": [1, 2]}',
        dialect,
        tools=(WEATHER,),
    )
    resp = build_reply(req, 7)
    assert resp.finish_reason is FinishReason.TOOL_USE
    assert len(resp.content) == 2
    assert isinstance(resp.content[0], TextBlock)
    assert resp.content[0].text
    assert resp.content[1] == ToolUseBlock(
        tool_id, "get_weather", {"city": "Paris", "days": [1, 2]}
    )


def test_tool_directive_without_input_calls_with_an_empty_object() -> None:
    resp = build_reply(request("mock:tool get_weather", tools=(WEATHER,)), 1)
    assert resp.content[-1] == ToolUseBlock("toolu_mock_1", "get_weather", {})


def test_tool_directive_for_an_unknown_tool_is_plain_text() -> None:
    resp = build_reply(request("mock:tool launch_rockets {}", tools=(WEATHER,)), 1)
    assert resp.finish_reason is FinishReason.END_TURN
    assert not any(isinstance(b, ToolUseBlock) for b in resp.content)


def test_tool_directive_with_broken_json_is_a_named_invalid_request() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        build_reply(request('mock:tool get_weather {"city": ', tools=(WEATHER,)), 1)
    assert caught.value.param == "messages"
    assert "mock:tool" in caught.value.message


def test_tool_directive_input_must_follow_the_name() -> None:
    resp = build_reply(request("mock:tool get_weather then [1, 2]", tools=(WEATHER,)), 1)
    assert resp.content[-1] == ToolUseBlock("toolu_mock_1", "get_weather", {})


@pytest.mark.parametrize(
    ("choice", "name"),
    [(ToolChoice("tool", "get_time"), "get_time"), (ToolChoice("any"), "get_weather")],
)
def test_forced_tool_choice_calls_with_a_schema_instance(choice: ToolChoice, name: str) -> None:
    time_tool = Tool(
        "get_time",
        None,
        {"type": "object", "properties": {"tz": {"enum": ["UTC"]}}, "required": ["tz"]},
    )
    resp = build_reply(request("hi", tools=(WEATHER, time_tool), tool_choice=choice), 2)
    call = resp.content[-1]
    assert isinstance(call, ToolUseBlock)
    assert call.name == name
    assert call.input == ({"tz": "UTC"} if name == "get_time" else {"city": "mock"})


def test_auto_tool_choice_without_directive_answers_text() -> None:
    resp = build_reply(request("hi", tools=(WEATHER,), tool_choice=ToolChoice("auto")), 2)
    assert resp.finish_reason is FinishReason.END_TURN


def test_tool_result_is_acknowledged() -> None:
    result = ToolResultBlock("toolu_1", (TextBlock("sunny, " + "y" * 300),))
    req = ChatRequest(
        dialect="openai",
        model="m",
        messages=(
            Message("user", (TextBlock("mock:tool get_weather {}"),)),
            Message("assistant", (ToolUseBlock("toolu_1", "get_weather", {}),)),
            Message("user", (result,)),
        ),
        tools=(WEATHER,),
    )
    resp = build_reply(req, 1)
    assert texts(resp) == ["Tool result received: " + ("sunny, " + "y" * 300)[:200]]
    assert resp.finish_reason is FinishReason.END_TURN


def test_json_object_format_answers_a_json_object() -> None:
    resp = build_reply(request("give json", response_format=ResponseFormat("json_object")), 1)
    value = orjson.loads(texts(resp)[0])
    assert isinstance(value, dict)
    assert value["you_said"] == "give json"


def test_json_schema_format_answers_a_schema_instance() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 18},
            "tier": {"type": "string", "enum": ["gold", "silver"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
        },
        "required": ["name", "age", "tier", "tags"],
    }
    fmt = ResponseFormat("json_schema", name="person", schema=schema, strict=True)
    resp = build_reply(request("extract mock:words 3", response_format=fmt), 1)
    assert orjson.loads(texts(resp)[0]) == {"name": "mock", "age": 18, "tier": "gold", "tags": []}


@pytest.mark.parametrize("count", [1, 5, 60, 400])
def test_words_directive_sets_the_reply_length(count: int) -> None:
    resp = build_reply(request(f"mock:words {count}"), 1)
    assert len(texts(resp)[0].split()) == count
    assert resp.usage.output_tokens == count


def test_words_directive_needs_a_number() -> None:
    with pytest.raises(InvalidRequestError):
        build_reply(request("mock:words many"), 1)


@pytest.mark.parametrize("mode", ["enabled", "adaptive"])
def test_thinking_on_the_anthropic_wire_comes_first_with_a_signature(mode: str) -> None:
    resp = build_reply(request("think", thinking={"type": mode, "budget_tokens": 2048}), 1)
    first = resp.content[0]
    assert isinstance(first, ThinkingBlock)
    assert first.thinking
    assert first.signature
    assert isinstance(resp.content[1], TextBlock)


@pytest.mark.parametrize(
    ("dialect", "thinking"),
    [
        ("openai", {"type": "enabled", "budget_tokens": 2048}),
        ("anthropic", {"type": "disabled"}),
        # Found by tests/fuzz: an unhashable type crashed the mock (a 502 through the gateway).
        ("anthropic", {"type": ["enabled"]}),
        ("anthropic", {"type": {}}),
    ],
)
def test_no_thinking_block_otherwise(dialect: DialectName, thinking: dict[str, Any]) -> None:
    resp = build_reply(request("think", dialect, thinking=thinking), 1)
    assert not any(isinstance(b, ThinkingBlock) for b in resp.content)


def test_max_tokens_truncates_the_text() -> None:
    resp = build_reply(request("mock:words 50", max_tokens=7), 1)
    assert resp.finish_reason is FinishReason.MAX_TOKENS
    assert len(texts(resp)[0].split()) == 7
    assert resp.usage.output_tokens == 7


def test_max_tokens_exactly_enough_is_not_truncated() -> None:
    resp = build_reply(request("mock:words 7", max_tokens=7), 1)
    assert resp.finish_reason is FinishReason.END_TURN


def test_max_tokens_below_the_tool_call_drops_it() -> None:
    req = request(
        'mock:tool get_weather {"city": "' + "z" * 200 + '"}', tools=(WEATHER,), max_tokens=10
    )
    resp = build_reply(req, 1)
    assert resp.finish_reason is FinishReason.MAX_TOKENS
    assert not any(isinstance(b, ToolUseBlock) for b in resp.content)


def test_max_tokens_counts_thinking_first() -> None:
    resp = build_reply(request("hi", thinking={"type": "enabled"}, max_tokens=3), 1)
    assert resp.finish_reason is FinishReason.MAX_TOKENS
    assert len(resp.content) == 1
    assert isinstance(resp.content[0], ThinkingBlock)
    assert len(resp.content[0].thinking.split()) == 3


def test_stop_sequence_cuts_at_the_earliest_match() -> None:
    resp = build_reply(request("alpha STOP beta END gamma", stop=("END", "STOP")), 1)
    assert resp.finish_reason is FinishReason.STOP_SEQUENCE
    assert resp.stop_sequence == "STOP"
    assert texts(resp) == [f"{GREETING} You said: alpha "]


def test_stop_sequence_not_present_changes_nothing() -> None:
    resp = build_reply(request("alpha", stop=("NOPE",)), 1)
    assert resp.finish_reason is FinishReason.END_TURN
    assert resp.stop_sequence is None


def test_input_tokens_grow_with_the_prompt() -> None:
    small = estimate_input_tokens(request("hi"))
    large = estimate_input_tokens(request("hi " * 400, tools=(WEATHER,)))
    assert 1 <= small < large
    empty = ChatRequest(dialect="openai", model="m", messages=())
    assert estimate_input_tokens(empty) >= 1


EQUIVALENCE_CASES = {
    "plain": request("hello there"),
    "long": request("mock:words 40"),
    "tool": request('mock:tool get_weather {"city": "Oslo", "units": "metric"}', tools=(WEATHER,)),
    "thinking": request("mock:words 12", thinking={"type": "enabled", "budget_tokens": 1024}),
    "truncated": request("mock:words 30", max_tokens=8),
    "stopped": request("one two STOP three", stop=("STOP",)),
    "json": request("x", "openai", response_format=ResponseFormat("json_object")),
    "openai-tool": request("mock:tool get_weather {}", "openai", tools=(WEATHER,)),
}


@pytest.mark.parametrize("name", sorted(EQUIVALENCE_CASES))
def test_stream_reassembles_to_the_whole_answer(name: str) -> None:
    resp = build_reply(EQUIVALENCE_CASES[name], 9)
    assert reassemble(reply_events(resp)) == resp


def test_stream_chunks_text_and_tool_arguments() -> None:
    events = reply_events(build_reply(EQUIVALENCE_CASES["long"], 1))
    assert sum(isinstance(e, TextDelta) for e in events) >= 10
    events = reply_events(build_reply(EQUIVALENCE_CASES["tool"], 1))
    assert sum(isinstance(e, ToolArgsDelta) for e in events) >= 2
    starts = [e for e in events if isinstance(e, MessageStart)]
    assert len(starts) == 1
    assert starts[0].usage.output_tokens == 0


def test_stream_message_delta_carries_the_final_usage() -> None:
    resp = build_reply(EQUIVALENCE_CASES["long"], 1)
    delta = next(e for e in reply_events(resp) if isinstance(e, MessageDelta))
    assert delta.usage == resp.usage
    assert delta.usage != Usage()


@given(
    st.text(alphabet=st.sampled_from(["a", "b", " ", "\n", "\t", "é"]), max_size=80),
    st.integers(min_value=1, max_value=5),
)
def test_text_chunks_concatenate_back(text: str, words: int) -> None:
    pieces = text_chunks(text, words)
    assert "".join(pieces) == text
    assert all(pieces)
    assert all(len(p.split()) <= words for p in pieces)


def test_a_changed_thinking_signature_is_rejected() -> None:
    from relaygate.core.errors import InvalidRequestError
    from relaygate.core.types import ChatRequest, Message, TextBlock, ThinkingBlock
    from relaygate.mock.engine import check_thinking_signatures, thinking_signature

    def request(block: ThinkingBlock) -> ChatRequest:
        turns = (
            Message("user", (TextBlock("hi"),)),
            Message("assistant", (block, TextBlock("hello"))),
            Message("user", (TextBlock("again"),)),
        )
        return ChatRequest(dialect="anthropic", model="m", messages=turns)

    check_thinking_signatures(request(ThinkingBlock("thought", thinking_signature("thought"))))
    with pytest.raises(InvalidRequestError, match="signature"):
        check_thinking_signatures(request(ThinkingBlock("thought!", thinking_signature("thought"))))


def test_recall_answers_with_every_user_message() -> None:
    history = (
        Message("user", (TextBlock("first"),)),
        Message("assistant", (TextBlock("ok"),)),
        Message("user", (ToolResultBlock("t1", (TextBlock("r"),)),)),
        Message("user", (TextBlock("mock:recall"),)),
    )
    reply = build_reply(ChatRequest("openai", "m", history), 1)
    assert texts(reply) == ["Recall: first | [result] | mock:recall"]
