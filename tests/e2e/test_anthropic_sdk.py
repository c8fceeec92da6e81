"""The official anthropic SDK against the real server, on the built-in mock (both wires)."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.e2e.server import Gateway

MODELS = [
    "mock-claude",
    "mock-gpt",
]  # Anthropic-wire upstream (relayed as is) / OpenAI-wire (translated)
BASH_TOOL = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}


@pytest.fixture
def client(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_message_with_system_blocks(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=200,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        metadata={"user_id": "u-1"},
        messages=[{"role": "user", "content": "ping from anthropic"}],
    )
    assert message.type == "message" and message.role == "assistant"
    text = "".join(b.text for b in message.content if b.type == "text")
    assert "ping from anthropic" in text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_string_system_and_stop_sequences(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=200,
        system="Be brief.",
        stop_sequences=["said"],
        messages=[{"role": "user", "content": "hello"}],
    )
    text = "".join(b.text for b in message.content if b.type == "text")
    assert "said" not in text
    assert message.stop_reason in ("stop_sequence", "end_turn")


@pytest.mark.parametrize("model", MODELS)
def test_stream_helper_text(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(
        model=model, max_tokens=500, messages=[{"role": "user", "content": "mock:words 40"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == "".join(b.text for b in final.content if b.type == "text")
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(client: anthropic.Anthropic, model: str, stream: bool) -> None:
    messages: list[dict[str, object]] = [
        {"role": "user", "content": 'run it mock:tool Bash {"command": "echo hi"}'}
    ]
    if stream:
        with client.messages.stream(
            model=model, max_tokens=500, tools=[BASH_TOOL], messages=messages
        ) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(
            model=model, max_tokens=500, tools=[BASH_TOOL], messages=messages
        )
    assert first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert tool_use.name == "Bash" and tool_use.input == {"command": "echo hi"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "hi"}],
        },
    ]
    final = client.messages.create(
        model=model, max_tokens=500, tools=[BASH_TOOL], messages=messages
    )
    text = "".join(b.text for b in final.content if b.type == "text")
    assert "Tool result received: hi" in text


def test_thinking_blocks_keep_their_signature(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="mock-claude",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think first"}],
    ) as stream:
        final = stream.get_final_message()
    thinking = [b for b in final.content if b.type == "thinking"]
    assert thinking and thinking[0].signature and thinking[0].thinking
    again = client.messages.create(
        model="mock-claude",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {"role": "user", "content": "think first"},
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in final.content],
            },
            {"role": "user", "content": "and again"},
        ],
    )
    assert again.stop_reason == "end_turn"


def test_beta_messages_and_bearer_auth(gateway: Gateway) -> None:
    client = anthropic.Anthropic(
        base_url=gateway.base_url, auth_token=gateway.api_key, api_key=None, max_retries=0
    )
    message = client.beta.messages.create(
        model="mock-claude",
        max_tokens=100,
        betas=["context-management-2025-06-27"],
        messages=[{"role": "user", "content": "beta hello"}],
    )
    assert message.content[0].type == "text"


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens_is_never_zero(client: anthropic.Anthropic, model: str) -> None:
    counted = client.messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "how many tokens is this sentence?"}]
    )
    assert counted.input_tokens > 0


def test_models_list_in_anthropic_format(client: anthropic.Anthropic) -> None:
    ids = [m.id for m in client.models.list()]
    assert "mock-claude" in ids


def test_errors_are_in_anthropic_format(gateway: Gateway) -> None:
    bad = anthropic.Anthropic(base_url=gateway.base_url, api_key="rg-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(
            model="mock-claude", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["type"] == "error"  # type: ignore[index]
    good = anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as missing:
        good.messages.create(
            model="claude-9", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert "mock-claude" in str(missing.value)
    bad_field = httpx.post(
        f"{gateway.base_url}/v1/messages",
        json={"model": "mock-claude", "max_tokens": "ten", "messages": []},
        headers={"x-api-key": gateway.api_key, "anthropic-version": "2023-06-01"},
    )
    assert bad_field.status_code == 400
    assert bad_field.json()["type"] == "error"
    assert bad_field.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in bad_field.json()["error"]["message"]


def test_streaming_request_gets_an_error_event_when_upstream_drops(gateway: Gateway) -> None:
    body = {
        "model": "mock-claude",
        "max_tokens": 300,
        "stream": True,
        "messages": [{"role": "user", "content": "mock:words 60 mock:fault drop"}],
    }
    headers = {"x-api-key": gateway.api_key, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{gateway.base_url}/v1/messages", json=body, headers=headers) as r:
        text = "".join(r.iter_text())
    assert "event: message_start" in text
    assert "event: error" in text
    assert "event: message_stop" not in text


@pytest.mark.parametrize("model", MODELS)
def test_whole_json_answer_to_a_stream_request_is_relayed_as_a_stream(
    client: anthropic.Anthropic, model: str
) -> None:
    # The upstream ignores ``stream`` and answers application/json (mock:fault json).
    content = 'go mock:fault json mock:tool Bash {"command": "ls"}'
    with client.messages.stream(
        model=model,
        max_tokens=500,
        tools=[BASH_TOOL],
        messages=[{"role": "user", "content": content}],
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and "message_stop" in kinds
    assert final.stop_reason == "tool_use"
    tool_use = next(b for b in final.content if b.type == "tool_use")
    assert tool_use.name == "Bash" and tool_use.input == {"command": "ls"}
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_json_error_answer_to_a_stream_request_is_an_anthropic_error(
    client: anthropic.Anthropic, model: str
) -> None:
    with (
        pytest.raises(anthropic.BadRequestError) as info,
        client.messages.stream(
            model=model, max_tokens=50, messages=[{"role": "user", "content": "mock:fault nope"}]
        ) as stream,
    ):
        list(stream)
    assert "nope" in str(info.value)


@pytest.mark.parametrize("model", MODELS)
def test_tool_schema_nested_too_deep_is_a_400_not_a_500(gateway: Gateway, model: str) -> None:
    schema = '{"a":' * 299 + "{}" + "}" * 299  # parses (orjson: 1,024), cannot re-serialize
    body = (
        f'{{"model":"{model}","max_tokens":10,"messages":[{{"role":"user","content":"hi"}}],'
        f'"tools":[{{"name":"t","input_schema":{schema}}}]}}'
    )
    response = httpx.post(
        f"{gateway.base_url}/v1/messages",
        content=body.encode(),
        headers={"x-api-key": gateway.api_key, "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "tools[0].input_schema" in error["error"]["message"]
