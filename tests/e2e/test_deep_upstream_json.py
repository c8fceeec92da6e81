"""Over real HTTP: an upstream answer nested deeper than the gateway can serialize is a clean
upstream error in the caller's dialect (a 502, or an error event in a stream), never a 500.

The upstream is a tiny aiohttp server (``ScriptedUpstream``) speaking both wires, whose tool
input nests 300 levels deep (orjson reads 1,024 levels but writes only 254).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from aiohttp import web

from tests.e2e.server import Gateway, start_gateway, stop
from tests.e2e.test_reliability import _dep, _model, request_log
from tests.e2e.test_resilience import ScriptedUpstream

DEEP = 300
DEEP_JSON = '{"a":' + "[" * DEEP + "]" * DEEP + "}"
ANTHROPIC_TOOL = '{"type":"tool_use","id":"toolu_1","name":"f","input":' + DEEP_JSON + "}"


def _sse(frames: list[tuple[str | None, str]]) -> bytes:
    out = b""
    for event, data in frames:
        out += (f"event: {event}\n" if event else "").encode() + f"data: {data}\n\n".encode()
    return out


async def _answer(request: web.Request, whole: str, frames: list[tuple[str | None, str]]) -> Any:
    body = await request.json()
    if body.get("stream"):
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_sse(frames))
        await response.write_eof()
        return response
    return web.Response(text=whole, content_type="application/json")


async def openai_deep(request: web.Request) -> web.StreamResponse:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": DEEP_JSON}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    whole = orjson.dumps(
        {"id": "c1", "model": "m", "choices": [{"index": 0, "message": message}]}
    ).decode()
    # Some servers stream the arguments as an object rather than a string.
    streamed = '{"index":0,"id":"call_1","function":{"name":"f","arguments":' + DEEP_JSON + "}}"
    chunk = '{"id":"c1","model":"m","choices":[{"index":0,"delta":{"tool_calls":[' + streamed
    return await _answer(request, whole, [(None, chunk + "]}}]}")])  # type: ignore[no-any-return]


async def anthropic_deep(request: web.Request) -> web.StreamResponse:
    whole = (
        '{"id":"msg_1","type":"message","role":"assistant","model":"m","content":['
        + ANTHROPIC_TOOL
        + '],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}'
    )
    start = '{"type":"message_start","message":{"id":"msg_1","model":"m","usage":{}}}'
    opening = '{"type":"content_block_start","index":0,"content_block":' + ANTHROPIC_TOOL + "}"
    frames = [("message_start", start), ("content_block_start", opening)]
    return await _answer(request, whole, frames)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    upstream = ScriptedUpstream(
        {"/oa/v1/chat/completions": openai_deep, "/an/v1/messages": anthropic_deep}
    )
    once = {"routing": {"attempts_per_deployment": 1}}
    models = [
        _model("deep-openai", [_dep("deep-oa", f"{upstream.base_url}/oa")], **once),
        _model(
            "deep-anthropic",
            [_dep("deep-an", f"{upstream.base_url}/an", wire="anthropic")],
            **once,
        ),
    ]
    home: Path = tmp_path_factory.mktemp("deep-home")
    config = home / "relaygate.yaml"
    config.write_text(yaml.safe_dump({"models": models}))
    gw = start_gateway(home, config=config)
    yield gw
    stop(gw.process)
    upstream.close()


def _call(gw: Gateway, model: str, caller: str, stream: bool) -> httpx.Response:
    messages = [{"role": "user", "content": "hi"}]
    headers = {"authorization": f"Bearer {gw.api_key}", "x-api-key": gw.api_key}
    if caller == "openai":
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        return httpx.post(f"{gw.base_url}/v1/chat/completions", json=body, headers=headers)
    headers["anthropic-version"] = "2023-06-01"
    body = {"model": model, "max_tokens": 50, "messages": messages, "stream": stream}
    return httpx.post(f"{gw.base_url}/v1/messages", json=body, headers=headers)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("caller", ["openai", "anthropic"])
@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_a_too_deep_upstream_answer_is_an_upstream_error_in_the_callers_dialect(
    gateway: Gateway, wire: str, caller: str, stream: bool
) -> None:
    response = _call(gateway, f"deep-{wire}", caller, stream)
    assert response.status_code in ((200, 502) if stream else (502,)), response.text
    assert "nested more than 240 levels deep" in response.text
    if response.status_code == 502:  # the error body in the caller's own shape
        error = response.json()["error"]
        if caller == "openai":
            assert error["type"] == "server_error"
        else:
            assert response.json()["type"] == "error" and error["type"] == "api_error"
    else:
        assert "error" in response.text.splitlines()[0] or "event: error" in response.text
    log = request_log(gateway, response.headers["x-request-id"])
    assert log["error"] == "upstream" and log["attempts"] == 1
    assert "Traceback" not in gateway.log()
