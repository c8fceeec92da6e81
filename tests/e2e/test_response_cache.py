"""The response cache and coalescing through the official SDKs, against a real gateway process
and a standalone slow mock (issue 11): both dialects, streamed and whole, relayed and translated;
100 concurrent identical streams make one upstream call; ``relaygate cache clear``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
import yaml

from tests.e2e.server import Gateway, MockServer, start_gateway, start_mock, stats, stop

# A slow upstream: 200 ms to the first token, then an event every 5 ms.
MOCK_ARGS = ["--latency-ms", "200", "--first-token-ms", "200", "--stream-interval-ms", "5"]
OPENAI_MODELS = ["cached-gpt", "cached-claude"]  # relayed as is / translated for an OpenAI caller
ANTHROPIC_MODELS = ["cached-claude", "cached-gpt"]  # relayed as is / translated


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    server = start_mock(MOCK_ARGS)
    yield server
    stop(server.process)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, mock: MockServer) -> Iterator[Gateway]:
    home: Path = tmp_path_factory.mktemp("cache-home")
    config = home / "relaygate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "limits": {"overload": {"enabled": False}},
                "cache": {"enabled": True},
                "models": [
                    _model("cached-gpt", "openai", f"{mock.base_url}/v1"),
                    _model("cached-claude", "anthropic", mock.base_url),
                ],
            }
        )
    )
    gw = start_gateway(home / "state", config)
    yield gw
    stop(gw.process)


def _model(name: str, wire: str, url: str) -> dict[str, Any]:
    return {
        "name": name,
        "deployments": [{"provider": wire, "name": f"{name}-dep", "base_url": url}],
    }


@pytest.fixture
def oai(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=gateway.api_key, max_retries=0)


@pytest.fixture
def claude(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)


def upstream_calls(mock: MockServer) -> int:
    return int(stats({"m": mock}, "m")["requests"])


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_whole_then_streamed_hit(
    oai: openai.OpenAI, mock: MockServer, model: str
) -> None:
    messages: Any = [{"role": "user", "content": f"openai whole {model}"}]
    before = upstream_calls(mock)
    first = oai.chat.completions.with_raw_response.create(
        model=model, messages=messages, temperature=0
    )
    assert first.headers["x-relaygate-cache"] == "miss"
    text = first.parse().choices[0].message.content
    again = oai.chat.completions.with_raw_response.create(
        model=model, messages=messages, temperature=0, user="someone-else"
    )
    assert again.headers["x-relaygate-cache"] == "hit"
    assert again.parse().choices[0].message.content == text
    with oai.chat.completions.with_streaming_response.create(
        model=model,
        messages=messages,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as streamed:
        assert streamed.headers["x-relaygate-cache"] == "hit"
        chunks = list(streamed.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert upstream_calls(mock) == before + 1


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_streamed_then_whole_hit(
    claude: anthropic.Anthropic, mock: MockServer, model: str
) -> None:
    messages: Any = [{"role": "user", "content": f"anthropic stream {model} mock:words 20"}]
    before = upstream_calls(mock)
    deterministic: Any = {"temperature": 0}  # this SDK's stream() takes it only as extra_body
    with claude.messages.stream(
        model=model, max_tokens=200, messages=messages, extra_body=deterministic
    ) as stream:
        streamed = stream.get_final_message()
    whole = claude.messages.with_raw_response.create(
        model=model, max_tokens=200, messages=messages, extra_body=deterministic
    )
    assert whole.headers["x-relaygate-cache"] == "hit"
    answer = whole.parse()
    assert answer.content[0].type == "text" and streamed.content[0].type == "text"
    assert answer.content[0].text == streamed.content[0].text
    assert answer.usage.output_tokens == streamed.usage.output_tokens
    with claude.messages.stream(
        model=model, max_tokens=200, messages=messages, extra_body=deterministic
    ) as replay:
        assert replay.get_final_message().content == streamed.content
    assert upstream_calls(mock) == before + 1


def test_100_identical_streams_make_one_upstream_call(gateway: Gateway, mock: MockServer) -> None:
    body = {
        "model": "cached-gpt",
        "temperature": 0,
        "stream": True,
        "messages": [{"role": "user", "content": "is the coupon still valid? mock:words 40"}],
    }
    headers = {"authorization": f"Bearer {gateway.api_key}"}
    before = upstream_calls(mock)

    def call(_: int) -> httpx.Response:
        with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
            return client.post("/v1/chat/completions", json=body, headers=headers)

    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(call, range(100)))
    assert upstream_calls(mock) == before + 1
    assert all(a.status_code == 200 for a in answers)
    assert sum(a.headers["x-relaygate-cache"] == "miss" for a in answers) == 1
    bodies = {a.content.split(b'"created"')[0] for a in answers}
    texts = {_text(a.content) for a in answers}
    assert len(texts) == 1 and len(texts.pop().split()) >= 40
    assert bodies and all(a.content.rstrip().endswith(b"data: [DONE]") for a in answers)


def _text(body: bytes) -> str:
    parts = []
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            for choice in orjson.loads(line[6:]).get("choices", []):
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def test_cache_clear_command(gateway: Gateway, oai: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "to be forgotten"}]
    oai.chat.completions.create(model="cached-gpt", messages=messages, temperature=0)
    args = [sys.executable, "-m", "relaygate.cli.main", "cache", "clear", "--model", "cached-gpt"]
    args += ["--url", gateway.base_url, "--admin-token", gateway.admin_token]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "removed" in done.stdout and "memory backend" in done.stdout
    again = oai.chat.completions.with_raw_response.create(
        model="cached-gpt", messages=messages, temperature=0
    )
    assert again.headers["x-relaygate-cache"] == "miss"
    bad = subprocess.run(
        [*args[:-1], "wrong-token"], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 1 and "401" in bad.stderr
