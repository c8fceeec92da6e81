"""Surge control over real HTTP: busy 429s in each dialect, key quotas, slots freed on disconnect,
several worker processes sharing limits through Redis, and a Redis outage ridden out.

Timing targets (time to a 429 under load) live in bench/surge_bench.py; here the bounds are loose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import Gateway, free_port, start_gateway, stop
from tests.waiting import wait_until

KEY_CACHE_REFRESH_SECONDS = 0.2
CONFIG: dict[str, Any] = {
    "key_cache_refresh_seconds": KEY_CACHE_REFRESH_SECONDS,
    "limits": {"queue": {"max_wait_seconds": 0.05}, "shared": {"probe_seconds": 0.2}},
    "models": [
        {
            "name": "slow2",
            "deployments": [
                {
                    "provider": "mock",
                    "name": "slow2-0",
                    "max_concurrency": 2,
                    # A stream holds its slot for 100 ms a word: as long as the test keeps it.
                    "mock": {"latency_ms": 600, "stream_interval_ms": 100},
                },
            ],
        },
        {
            "name": "stream1",
            "deployments": [
                {
                    "provider": "mock",
                    "name": "stream1-0",
                    "max_concurrency": 1,
                    "mock": {"first_token_ms": 5, "stream_interval_ms": 100},
                },
            ],
        },
        {"name": "open", "deployments": [{"provider": "mock", "name": "open-0"}]},
    ],
}


def write_config(directory: Path, config: dict[str, Any] = CONFIG) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "surge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("surge-home")
    gw = start_gateway(home, config=write_config(home))
    yield gw
    stop(gw.process)


def chat(model: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def post(
    gw: Gateway, path: str, body: dict[str, Any], key: str | None = None
) -> tuple[httpx.Response, float]:
    headers = {"Authorization": f"Bearer {key or gw.api_key}", "anthropic-version": "2023-06-01"}
    started = time.perf_counter()
    # A fresh connection per request, so a multi-process server spreads them over its workers.
    response = httpx.post(f"{gw.base_url}{path}", json=body, headers=headers, timeout=30)
    return response, time.perf_counter() - started


def burst(
    gw: Gateway, path: str, body: dict[str, Any], n: int, key: str | None = None
) -> list[Any]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: post(gw, path, body, key), range(n)))


def hold_slot(
    gw: Gateway, path: str
) -> tuple[httpx.Client, httpx.Response, Iterator[bytes]] | None:
    """A stream of slow2 that holds a slot until closed (its first bytes read), or None when it
    was refused (a slot of the previous test not freed yet)."""
    headers = {"Authorization": f"Bearer {gw.api_key}", "anthropic-version": "2023-06-01"}
    body = chat("slow2", "mock:words 6000", max_tokens=6000, stream=True)
    client = httpx.Client(timeout=30)
    request = client.build_request("POST", f"{gw.base_url}{path}", json=body, headers=headers)
    response = client.send(request, stream=True)
    if response.status_code != 200:
        assert response.status_code == 429, response.read()
        response.close()
        client.close()
        return None
    chunks = response.iter_bytes()  # kept: a dropped iterator closes the response
    next(chunks)
    return client, response, chunks


def create_key(gw: Gateway, *options: str) -> str:
    args = [sys.executable, "-m", "relaygate.cli.main", "keys", "create", "--json"]
    args += ["--database-url", f"sqlite:///{gw.home / 'relaygate.db'}", *options]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    key: str = json.loads(out)["key"]
    count = {"model": "open", "messages": [{"role": "user", "content": "x"}]}
    accepted_since: list[float] = []

    def known_to_every_worker() -> bool:
        # Each worker re-reads the key table every key_cache_refresh_seconds, and the key was in
        # it before any worker accepted it: once requests (spread over the workers) have been
        # accepted without a break for two intervals, every worker has it. No worker-level
        # signal exists to poll instead.
        if post(gw, "/v1/messages/count_tokens", count, key)[0].status_code != 200:
            accepted_since.clear()
            return False
        accepted_since[:] = accepted_since or [time.monotonic()]
        return time.monotonic() - accepted_since[0] >= 2 * KEY_CACHE_REFRESH_SECONDS

    wait_until(known_to_every_worker, what="the new key accepted by every worker")
    return key


@pytest.mark.parametrize(
    ("path", "body_of"),
    [
        ("/v1/chat/completions", lambda r: r["error"]),
        ("/v1/messages", lambda r: r["error"] if r.get("type") == "error" else None),
    ],
)
def test_full_deployment_answers_busy_429_in_the_callers_dialect(
    gateway: Gateway, path: str, body_of: Any
) -> None:
    # Two streams of 6,000 words (minutes at 100 ms a chunk) take both slots and keep them
    # until the test closes them: nothing frees a slot while the burst below is answered.
    held = [wait_until(lambda: hold_slot(gateway, path), what="a slot of slow2") for _ in range(2)]
    try:
        results = burst(gateway, path, chat("slow2", max_tokens=16), 4)
    finally:
        for taken in held:
            assert taken is not None  # wait_until returns only what is truthy
            client, response, _ = taken
            response.close()
            client.close()
    # Each refused at once or after the 50 ms maximum wait: one held until a slot freed would
    # still be waiting for the streams (its 30 s read timeout fails the test).
    assert [r.status_code for r, _ in results] == [429] * 4
    for response, _ in results:
        assert int(response.headers["retry-after"]) >= 1
        error = body_of(response.json())
        assert error["type"] == "rate_limit_error"
        assert error["message"].startswith("relaygate is busy: retry in ")


def test_key_quota_refuses_chat_but_never_count_tokens(gateway: Gateway) -> None:
    key = create_key(gateway, "--name", "rpm-two", "--rpm", "2")
    statuses = [post(gateway, "/v1/chat/completions", chat("open"), key)[0] for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    refused = statuses[2]
    assert "exceeded its requests-per-minute limit" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    count = {"model": "open", "messages": [{"role": "user", "content": "count me"}]}
    counted = burst(gateway, "/v1/messages/count_tokens", count, 25, key)
    assert [r.status_code for r, _ in counted] == [200] * 25


def test_client_that_goes_away_mid_stream_frees_its_slot(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    body = chat("stream1", "mock:words 90", stream=True)
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", f"{gateway.base_url}/v1/chat/completions", json=body, headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_bytes()  # kept: a dropped iterator closes the response
        next(chunks)
        busy, _ = post(gateway, "/v1/chat/completions", chat("stream1"))
        assert busy.status_code == 429  # the stream holds the only slot
    deadline = time.monotonic() + 5
    while True:
        after, _ = post(gateway, "/v1/chat/completions", chat("stream1"))
        if after.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after.status_code == 200


@pytest.mark.redis
def test_workers_share_one_key_quota_through_redis(tmp_path: Path, redis_url: str) -> None:
    env = {"RELAYGATE_WORKERS": "2", "RELAYGATE_REDIS_URL": redis_url}
    gw = start_gateway(tmp_path / "home", config=write_config(tmp_path), env=env)
    try:
        key = create_key(gw, "--name", "shared-ten", "--rpm", "10")
        results = [post(gw, "/v1/chat/completions", chat("open"), key)[0] for _ in range(30)]
        assert sum(r.status_code == 200 for r in results) == 10
        assert sum(r.status_code == 429 for r in results) == 20
        assert "with 2 workers" in gw.log()
    finally:
        stop(gw.process)


def test_workers_without_redis_refuse_to_start(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "relaygate.cli.main", "serve", "--workers", "2"]
    args += ["--home", str(tmp_path), "--port", str(free_port())]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=30, env=_env_without_redis()
    )
    assert done.returncode == 2
    assert "--workers 2 needs --redis-url" in done.stderr


def _env_without_redis() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RELAYGATE_REDIS_URL"}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A redis-server of our own, on its own port, that a test may kill and restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []
    yield port, started
    for process in started:
        stop(process)


def run_redis(port: int, started: list[subprocess.Popen[bytes]]) -> None:
    args = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    started.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ping = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
        )
        if ping.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    raise AssertionError("redis-server did not start")


def shared_up(gw: Gateway) -> float:
    text = httpx.get(f"{gw.base_url}/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith("relaygate_shared_limits_up "))
    return float(line.split()[1])


def test_redis_outage_keeps_serving_on_local_limits_and_recovers(
    tmp_path: Path, private_redis: tuple[int, list[subprocess.Popen[bytes]]]
) -> None:
    port, started = private_redis
    run_redis(port, started)
    env = {"RELAYGATE_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    gw = start_gateway(tmp_path / "home", config=write_config(tmp_path), env=env)
    try:
        key = create_key(gw, "--name", "roomy", "--rpm", "1000")
        assert post(gw, "/v1/chat/completions", chat("open"), key)[0].status_code == 200
        assert shared_up(gw) == 1
        stop(started.pop())
        statuses = [post(gw, "/v1/chat/completions", chat("open"), key) for _ in range(5)]
        assert [r.status_code for r, _ in statuses] == [200] * 5
        assert all(seconds < 2 for _, seconds in statuses)
        assert shared_up(gw) == 0
        assert "shared limits unavailable" in gw.log()
        run_redis(port, started)
        deadline = time.monotonic() + 10
        while shared_up(gw) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert shared_up(gw) == 1
        assert "shared limits resumed" in gw.log()
        assert post(gw, "/v1/chat/completions", chat("open"), key)[0].status_code == 200
        keys = subprocess.run(
            ["redis-cli", "-p", str(port), "--scan", "--pattern", "rg:{lim}:k:*"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert keys, "the key's bucket is counted in Redis again"
    finally:
        stop(gw.process)
