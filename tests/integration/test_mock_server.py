"""The standalone mock server (``python -m relaygate.cli.mock serve``) driven by the SDKs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

WEATHER_OPENAI: Any = {
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
WEATHER_ANTHROPIC: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--seed", "1", "--retry-after", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "relaygate.cli.mock", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                http(base, "GET", "/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read() if process.stdout else b""
                    pytest.fail(f"mock server did not start: {output.decode(errors='replace')}")
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def base(server: str) -> str:
    http(server, "PUT", "/mock/faults", {"kind": "none", "retry_after": 2})
    http(server, "POST", "/mock/stats/reset")
    return server


@pytest.fixture
def oai(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="mock-key", max_retries=0, timeout=10)


@pytest.fixture
def claude(base: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base, api_key="mock-key", max_retries=0, timeout=10)


def fault(kind: str) -> dict[str, str]:
    return {"x-mock-fault": kind}


# --- OpenAI SDK ---------------------------------------------------------------------------


def test_openai_chat(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "hi there"}]
    )
    assert completion.choices[0].message.content == (
        "Hello from the relaygate mock. You said: hi there"
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 9


def test_openai_stream_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": "mock:words 30"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 30
    assert len(chunks) > 10
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 30


def test_openai_tool_call(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": 'mock:tool get_weather {"city": "Oslo"}'}],
        tools=[WEATHER_OPENAI],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]


def test_openai_stream_tool_call(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": 'mock:tool get_weather {"city": "Lima"}'}],
        tools=[WEATHER_OPENAI],
        stream=True,
    )
    args = ""
    finish = None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            args += call.function.arguments or "" if call.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert json.loads(args) == {"city": "Lima"}
    assert finish == "tool_calls"


def test_openai_json_schema(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": "extract"}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "person",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "vip": {"type": "boolean"}},
                    "required": ["name", "vip"],
                    "additionalProperties": False,
                },
            },
        },
    )
    content = completion.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"name": "mock", "vip": False}


def test_openai_models(oai: openai.OpenAI) -> None:
    assert "mock-gpt" in {m.id for m in oai.models.list()}


def test_openai_rate_limit(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "x"}],
            extra_headers=fault("429"),
        )
    assert caught.value.response.headers["retry-after"] == "2"


@pytest.mark.parametrize("kind", ["500", "529"])
def test_openai_server_errors(oai: openai.OpenAI, kind: str) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "x"}], extra_headers=fault(kind)
        )
    assert caught.value.status_code == int(kind)


def test_openai_hang_times_out(oai: openai.OpenAI) -> None:
    began = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.5).chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "x"}],
            extra_headers=fault("hang"),
        )
    assert time.monotonic() - began < 5


def test_openai_drop_whole(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "x"}],
            extra_headers=fault("drop"),
        )


def test_openai_drop_stream(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": "mock:words 30"}],
        stream=True,
        extra_headers=fault("drop"),
    )
    received: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        received.extend(stream)
    assert received


def test_openai_malformed(oai: openai.OpenAI) -> None:
    with pytest.raises((openai.APIError, json.JSONDecodeError)):
        oai.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "x"}],
            extra_headers=fault("malformed"),
        )


def test_openai_retries_past_first_n(base: str) -> None:
    http(base, "PUT", "/mock/faults", {"kind": "500", "first_n": 2})
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=2, timeout=10)
    completion = client.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "x"}]
    )
    assert completion.choices[0].message.content
    stats = http(base, "GET", "/mock/stats")
    assert stats["by_status"] == {"500": 2, "200": 1}


# --- Anthropic SDK ------------------------------------------------------------------------


def test_anthropic_message(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="mock-claude", max_tokens=100, messages=[{"role": "user", "content": "hello"}]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the relaygate mock. You said: hello"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens >= 1


def test_anthropic_stream_equals_the_whole_message(claude: anthropic.Anthropic) -> None:
    params: Any = {
        "model": "mock-claude",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "mock:words 25"}],
    }
    whole = claude.messages.create(**params)
    with claude.messages.stream(**params) as stream:
        streamed_text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed_text == whole.content[0].text
    assert [b.to_dict() for b in final.content] == [b.to_dict() for b in whole.content]
    assert final.usage.output_tokens == whole.usage.output_tokens == 25


def test_anthropic_thinking_and_tool_use_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="mock-claude",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[WEATHER_ANTHROPIC],
        messages=[{"role": "user", "content": 'mock:tool get_weather {"city": "Kyoto"}'}],
    ) as stream:
        final = stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text", "tool_use"]
    thinking = final.content[0]
    assert thinking.type == "thinking"
    assert thinking.signature
    tool = final.content[2]
    assert tool.type == "tool_use"
    assert tool.input == {"city": "Kyoto"}
    assert tool.id.startswith("toolu_")
    assert final.stop_reason == "tool_use"


def test_anthropic_tool_result_round_trip(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="mock-claude",
        max_tokens=100,
        tools=[WEATHER_ANTHROPIC],
        messages=[
            {"role": "user", "content": "mock:tool get_weather {}"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"}],
            },
        ],
    )
    assert message.content[0].text == "Tool result received: rain"  # type: ignore[union-attr]


def test_anthropic_stop_sequence_and_max_tokens(claude: anthropic.Anthropic) -> None:
    stopped = claude.messages.create(
        model="mock-claude",
        max_tokens=100,
        stop_sequences=["HALT"],
        messages=[{"role": "user", "content": "go HALT now"}],
    )
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == "HALT"
    capped = claude.messages.create(
        model="mock-claude", max_tokens=4, messages=[{"role": "user", "content": "mock:words 50"}]
    )
    assert capped.stop_reason == "max_tokens"
    assert capped.usage.output_tokens == 4


def test_anthropic_count_tokens(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(
        model="mock-claude", messages=[{"role": "user", "content": "count me " * 50}]
    )
    assert counted.input_tokens > 10


def test_anthropic_models(claude: anthropic.Anthropic) -> None:
    assert "mock-claude" in {m.id for m in claude.models.list()}


def test_anthropic_rate_limit(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(
            model="mock-claude",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_headers=fault("429"),
        )
    assert caught.value.response.headers["retry-after"] == "2"


def test_anthropic_server_error_from_the_prompt(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        claude.messages.create(
            model="mock-claude",
            max_tokens=10,
            messages=[{"role": "user", "content": "mock:fault 500"}],
        )
    assert caught.value.status_code == 500


def test_anthropic_overloaded(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError) as caught:
        claude.messages.create(
            model="mock-claude",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_headers=fault("529"),
        )
    assert caught.value.status_code == 529
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_anthropic_hang_times_out(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APITimeoutError):
        claude.with_options(timeout=0.5).messages.create(
            model="mock-claude",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_headers=fault("hang"),
        )


def stream_text(client: anthropic.Anthropic, kind: str, received: list[str]) -> None:
    with client.messages.stream(
        model="mock-claude",
        max_tokens=100,
        messages=[{"role": "user", "content": "mock:words 30"}],
        extra_headers=fault(kind),
    ) as stream:
        received.extend(stream.text_stream)


def test_anthropic_drop_stream(claude: anthropic.Anthropic) -> None:
    received: list[str] = []
    with pytest.raises(Exception) as caught:  # noqa: PT011
        stream_text(claude, "drop", received)
    assert received
    assert "incomplete" in str(caught.value).lower() or isinstance(caught.value, anthropic.APIError)


def test_anthropic_malformed_stream(claude: anthropic.Anthropic) -> None:
    with pytest.raises((anthropic.APIError, json.JSONDecodeError)):
        stream_text(claude, "malformed", [])


def test_server_stats_saw_everything(base: str, claude: anthropic.Anthropic) -> None:
    claude.messages.create(
        model="mock-claude", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    stats = http(base, "GET", "/mock/stats")
    assert stats["requests"] == 1
    assert stats["by_path"] == {"/v1/messages": 1}
    assert stats["in_flight"] == 0
