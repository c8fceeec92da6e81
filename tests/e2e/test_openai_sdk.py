"""The official openai SDK against the real server, on the built-in mock (both upstream wires)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.e2e.server import Gateway

MODELS = [
    "mock-gpt",
    "mock-claude",
]  # OpenAI-wire upstream (relayed as is) / Anthropic-wire (translated)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=gateway.api_key, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_chat_completion(client: openai.OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "ping from openai"}]
    )
    completion = raw.parse()
    assert "Hello from the relaygate mock" in (completion.choices[0].message.content or "")
    assert "ping from openai" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert completion.usage.prompt_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert float(raw.headers["x-relaygate-overhead-ms"]) >= 0
    assert raw.headers["x-relaygate-model"] == model


@pytest.mark.parametrize("model", MODELS)
def test_streaming_with_usage(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "stream me mock:words 30"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) >= 30
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_streaming_without_usage_has_no_usage_chunk(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    assert chunks and all(c.choices for c in chunks)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(client: openai.OpenAI, model: str, stream: bool) -> None:
    messages: list[dict[str, object]] = [
        {"role": "user", "content": 'weather? mock:tool get_weather {"city": "Paris"}'}
    ]
    call_id, name, arguments = _first_tool_call(client, model, messages, stream)
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"},
    ]
    final = client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    assert "Tool result received: sunny, 21C" in (final.choices[0].message.content or "")


def _first_tool_call(
    client: openai.OpenAI, model: str, messages: list[dict[str, object]], stream: bool
) -> tuple[str, str, str]:
    if not stream:
        completion = client.chat.completions.create(
            model=model, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
        )
        assert completion.choices[0].finish_reason == "tool_calls"
        call = completion.choices[0].message.tool_calls[0]
        return call.id, call.function.name, call.function.arguments
    call_id, name, arguments, finish = "", "", "", None
    for chunk in client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL], stream=True
    ):
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            call_id = delta.id or call_id
            if delta.function is not None:
                name = delta.function.name or name
                arguments += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    return call_id, name, arguments


@pytest.mark.parametrize("model", MODELS)
def test_json_schema_response_format(client: openai.OpenAI, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative"]},
            "score": {"type": "number"},
        },
        "required": ["sentiment", "score"],
    }
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "I love it"}],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    )
    data = json.loads(completion.choices[0].message.content or "")
    assert data["sentiment"] in ("positive", "negative")
    assert isinstance(data["score"], (int, float))


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"mock-gpt", "mock-claude", "mock-fast"} <= set(ids)
    assert client.models.retrieve("mock-gpt").id == "mock-gpt"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_bad_key_is_401(gateway: Gateway) -> None:
    bad = openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="rg-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401
    assert gateway.api_key not in str(info.value.body)


def test_unknown_model_is_404_listing_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert "mock-gpt" in str(info.value) and "gpt-9" in str(info.value)


def test_bad_field_type_is_400_naming_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="mock-gpt", messages="not a list")  # type: ignore[arg-type]
    assert "messages" in str(info.value)


def test_malformed_json_and_oversized_body(gateway: Gateway) -> None:
    headers = {"authorization": f"Bearer {gateway.api_key}", "content-type": "application/json"}
    url = f"{gateway.base_url}/v1/chat/completions"
    malformed = httpx.post(url, content=b"{not json", headers=headers)
    assert malformed.status_code == 400
    assert malformed.json()["error"]["type"] == "invalid_request_error"
    huge = httpx.post(url, content=b"x" * (33 * 1024 * 1024), headers=headers)
    assert huge.status_code == 413
    assert "error" in huge.json()


@pytest.mark.parametrize(("fault", "status"), [("500", 502), ("429", 429)])
def test_upstream_faults_map_to_meaningful_status(
    gateway: Gateway, fault: str, status: int
) -> None:
    response = httpx.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={
            "model": "mock-fast",
            "messages": [{"role": "user", "content": f"mock:fault {fault}"}],
        },
        headers={"authorization": f"Bearer {gateway.api_key}"},
        timeout=30,
    )
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("model", MODELS)
def test_whole_json_answer_to_a_stream_request_is_relayed_as_a_stream(
    client: openai.OpenAI, model: str
) -> None:
    # The upstream ignores ``stream`` and answers application/json (mock:fault json).
    messages: list[dict[str, object]] = [
        {"role": "user", "content": 'mock:fault json mock:tool get_weather {"city": "Oslo"}'}
    ]
    call_id, name, arguments = _first_tool_call(client, model, messages, stream=True)
    assert call_id and name == "get_weather"
    assert json.loads(arguments) == {"city": "Oslo"}
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "mock:fault json mock:words 12"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) >= 12
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_json_error_answer_to_a_stream_request_is_an_openai_error(
    client: openai.OpenAI, model: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        list(
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "mock:fault nope"}], stream=True
            )
        )
    assert "nope" in str(info.value)


@pytest.mark.parametrize("model", MODELS)
def test_tool_schema_nested_too_deep_is_a_400_not_a_500(gateway: Gateway, model: str) -> None:
    schema = '{"a":' * 299 + "{}" + "}" * 299  # parses (orjson: 1,024), cannot re-serialize
    tool = f'{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}'
    body = f'{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}],"tools":[{tool}]}}'
    response = httpx.post(
        f"{gateway.base_url}/v1/chat/completions",
        content=body.encode(),
        headers={"authorization": f"Bearer {gateway.api_key}", "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "tools[0].function.parameters" in error["message"]
