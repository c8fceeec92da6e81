"""Overload shedding over real HTTP, forced on by a 0 ms lag threshold: low-priority chat is
refused with the busy 429 in the caller's dialect before its body is read (the connection stays
usable), a high-priority key is still served, and count_tokens, /healthz, /metrics never shed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import Gateway, start_gateway, stop

CONFIG: dict[str, Any] = {
    "key_cache_refresh_seconds": 0.2,
    "limits": {"overload": {"shed": [{"below_priority": 5, "lag_ms": 0}]}},
    "models": [{"name": "open", "deployments": [{"provider": "mock", "name": "open-0"}]}],
}
CHAT = {"model": "open", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("overload-home")
    config = home / "overload.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    gw = start_gateway(home, config=config)
    yield gw
    stop(gw.process)


@pytest.fixture(scope="module")
def high_key(gateway: Gateway) -> str:
    args = [sys.executable, "-m", "relaygate.cli.main", "keys", "create", "--json"]
    args += ["--database-url", f"sqlite:///{gateway.home / 'relaygate.db'}"]
    args += ["--name", "vip", "--priority", "5"]
    key: str = json.loads(subprocess.run(args, check=True, capture_output=True).stdout)["key"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # count_tokens is never shed: it tells the key is known
        if post(gateway, "/v1/messages/count_tokens", key).status_code == 200:
            return key
        time.sleep(0.1)
    raise AssertionError("the new key never became valid")


def post(gw: Gateway, path: str, key: str, body: dict[str, Any] = CHAT) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    return httpx.post(f"{gw.base_url}{path}", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("path", "error_of"),
    [
        ("/v1/chat/completions", lambda r: r["error"]),
        ("/v1/messages", lambda r: r["error"] if r.get("type") == "error" else None),
    ],
)
def test_low_priority_gets_busy_429_in_its_dialect_and_high_priority_is_served(
    gateway: Gateway, high_key: str, path: str, error_of: Any
) -> None:
    refused = post(gateway, path, gateway.api_key)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["x-request-id"]
    error = error_of(refused.json())
    assert error["type"] == "rate_limit_error"
    assert error["message"] == "relaygate is busy: retry in 1 s"
    assert post(gateway, path, high_key).status_code == 200


def test_bad_keys_are_still_told_so_while_shedding(gateway: Gateway) -> None:
    assert post(gateway, "/v1/chat/completions", "rg-" + "x" * 40).status_code == 401


def test_count_tokens_health_and_metrics_are_never_shed(gateway: Gateway) -> None:
    assert post(gateway, "/v1/messages/count_tokens", gateway.api_key).status_code == 200
    assert httpx.get(f"{gateway.base_url}/healthz", timeout=10).status_code == 200
    post(gateway, "/v1/chat/completions", gateway.api_key)
    metrics = httpx.get(f"{gateway.base_url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert 'relaygate_shed_requests_total{reason="loop_lag"}' in metrics.text
    assert "relaygate_event_loop_lag_seconds " in metrics.text


def _request_head(gw: Gateway, key: str, length: int) -> bytes:
    host = gw.base_url.removeprefix("http://")
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response (content-length or chunked); asserts nothing follows it."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    lowered = head.lower()
    if b"content-length:" in lowered:
        length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += _recv(sock)
        assert len(rest) == length, "bytes after the response: the unread body leaked into it"
        return int(head[9:12]), rest
    assert b"transfer-encoding: chunked" in lowered
    while not rest.endswith(b"0\r\n\r\n"):
        rest += _recv(sock)
    body, pos = b"", 0
    while True:
        size_end = rest.index(b"\r\n", pos)
        size = int(rest[pos:size_end], 16)
        if size == 0:
            assert size_end + 4 == len(rest), "bytes after the response"
            return int(head[9:12]), body
        body += rest[size_end + 2 : size_end + 2 + size]
        pos = size_end + 4 + size


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, "the gateway closed the connection"
    return chunk


def test_refusal_is_sent_before_the_body_and_the_connection_stays_usable(
    gateway: Gateway, high_key: str
) -> None:
    body = json.dumps(CHAT).encode()
    port = int(gateway.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_request_head(gateway, gateway.api_key, len(body)))
        status, answer = _read_response(sock)  # no body sent yet: a reader would wait forever
        assert status == 429
        assert b"relaygate is busy" in answer
        sock.sendall(body)  # the late body is skipped; the next request on the socket is served
        sock.sendall(_request_head(gateway, high_key, len(body)) + body)
        status, answer = _read_response(sock)
        assert status == 200, answer
        assert json.loads(answer)["object"] == "chat.completion"
        sock.sendall(_request_head(gateway, gateway.api_key, len(body)) + body)
        assert _read_response(sock)[0] == 429
