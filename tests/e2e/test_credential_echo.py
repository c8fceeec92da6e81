"""Upstream credentials never reach the caller or the log (issue 8, item 4).

A fake upstream (both wires) quotes the credential header it received in its error answers: as a
whole error body, and as an error event inside a 200 stream (split over two writes in the middle
of the key). Whatever the caller's dialect and whether it streams, the key the gateway sent must
appear nowhere in what the caller gets, nor in the gateway's log.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import Gateway, start_gateway, stop

# Shapes no prefix rule would catch; the second one needs JSON escaping.
OPENAI_KEY = "upstream-cred-Qx81vLm0Zt4Hk2Pw9Rj7"
ANTHROPIC_KEY = 'anth/cred+Wd3N"Kp6Ys1Lr8Tb5'
BEHAVIOURS = ("status-400", "status-500", "midstream")


class EchoingUpstream(BaseHTTPRequestHandler):
    received: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        anthropic = "/v1/messages" in self.path  # count_tokens too
        credential = self.headers.get("x-api-key" if anthropic else "authorization", "")
        self.received.append(credential)
        said = f"invalid credential sent: {credential}"
        behaviour = body["model"]
        if behaviour == "midstream" and body.get("stream"):
            self._stream(anthropic, said, body["model"])
            return
        status = 400 if behaviour == "status-400" else 500
        kind = "invalid_request_error" if status == 400 else "api_error"
        error = {"type": "error", "error": {"type": kind, "message": said}}
        payload = json.dumps(error).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, anthropic: bool, said: str, model: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        if anthropic:
            start = {
                "type": "message_start",
                "message": {"id": "msg_1", "model": model, "usage": {"input_tokens": 3}},
            }
            frames = [
                b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n",
                b"event: content_block_start\ndata: "
                + json.dumps(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": "partial "},
                    }
                ).encode()
                + b"\n\n",
            ]
            error = {"type": "error", "error": {"type": "api_error", "message": said}}
            failure = b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n"
        else:
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": "partial "}}],
            }
            frames = [b"data: " + json.dumps(chunk).encode() + b"\n\n"]
            error = {"error": {"message": said, "type": "server_error"}}
            failure = b"data: " + json.dumps(error).encode() + b"\n\n"
        for frame in frames:
            self.wfile.write(frame)
            self.wfile.flush()
        time.sleep(0.05)
        cut = failure.index(b"Wd3N" if anthropic else b"Qx81")  # split inside the key
        for part in (failure[:cut], failure[cut:]):
            self.wfile.write(part)
            self.wfile.flush()
            time.sleep(0.05)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gateway(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("credential-echo")
    models = []
    for wire, base, key_env in (
        ("openai", f"{upstream}/v1", "ECHO_OPENAI_KEY"),
        ("anthropic", upstream, "ECHO_ANTHROPIC_KEY"),
    ):
        for behaviour in BEHAVIOURS:
            deployment = {
                "provider": wire,
                "name": f"{wire}-{behaviour}",
                "base_url": base,
                "api_key_env": key_env,
                "model": behaviour,
                "breaker": {"consecutive_failures": 1000},
            }
            routing = {"attempts_per_deployment": 1}
            models.append(
                {"name": f"{wire}-{behaviour}", "deployments": [deployment], "routing": routing}
            )
    config = home / "relaygate.yaml"
    config.write_text(yaml.safe_dump({"models": models, "log_level": "debug"}))
    env = {"ECHO_OPENAI_KEY": OPENAI_KEY, "ECHO_ANTHROPIC_KEY": ANTHROPIC_KEY}
    gw = start_gateway(home, config, env=env)
    yield gw
    stop(gw.process)


def _secret_forms() -> list[str]:
    forms = []
    for key in (OPENAI_KEY, ANTHROPIC_KEY):
        forms += [key, json.dumps(key)[1:-1]]
    return forms


def _call(gw: Gateway, caller: str, model: str, stream: bool) -> tuple[int, str]:
    message = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    if caller == "openai":
        url, headers = "/v1/chat/completions", {"authorization": f"Bearer {gw.api_key}"}
    else:
        url = "/v1/messages"
        headers = {"x-api-key": gw.api_key, "anthropic-version": "2023-06-01"}
        message["max_tokens"] = 16
    with httpx.Client(base_url=gw.base_url, timeout=30) as client:
        response = client.post(url, json=message, headers=headers)
        return response.status_code, response.text


# Every combination, but a stream error event needs a streamed request.
CASES = [
    pytest.param(behaviour, wire, caller, stream, id=f"{behaviour}-{wire}-to-{caller}-{mode}")
    for behaviour in BEHAVIOURS
    for wire in ("openai", "anthropic")
    for caller in ("openai", "anthropic")
    for stream, mode in ((False, "whole"), (True, "stream"))
    if stream or behaviour != "midstream"
]


@pytest.mark.parametrize(("behaviour", "wire", "caller", "stream"), CASES)
def test_upstream_key_echoed_in_an_error_never_reaches_the_caller(
    gateway: Gateway, behaviour: str, wire: str, caller: str, stream: bool
) -> None:
    EchoingUpstream.received.clear()
    status, text = _call(gateway, caller, f"{wire}-{behaviour}", stream)
    sent = OPENAI_KEY if wire == "openai" else ANTHROPIC_KEY
    assert any(sent in header for header in EchoingUpstream.received)  # the upstream echoed it
    assert "error" in text and (status >= 400 or stream)
    for secret in _secret_forms():
        assert secret not in text
    assert "[redacted]" in text  # the rest of the upstream's message still reaches the caller


def test_upstream_key_echoed_by_count_tokens_never_reaches_the_caller(gateway: Gateway) -> None:
    EchoingUpstream.received.clear()
    message = {"model": "anthropic-status-400", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": gateway.api_key, "anthropic-version": "2023-06-01"}
    url = f"{gateway.base_url}/v1/messages/count_tokens"
    response = httpx.post(url, json=message, headers=headers, timeout=30)
    assert EchoingUpstream.received == [ANTHROPIC_KEY]
    assert response.status_code == 400
    for secret in _secret_forms():
        assert secret not in response.text
    assert "[redacted]" in response.text


def test_gateway_log_never_holds_an_upstream_key(gateway: Gateway) -> None:
    for wire in ("openai", "anthropic"):
        for behaviour in BEHAVIOURS:
            _call(gateway, "openai", f"{wire}-{behaviour}", True)
    log = gateway.log()
    assert "request" in log
    for secret in _secret_forms():
        assert secret not in log
