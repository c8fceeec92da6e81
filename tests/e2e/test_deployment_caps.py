"""Deployment caps per attempt, over real HTTP against three ``relaygate mock serve`` upstreams.

Model ``duo`` has two deployments capped at one request in flight each (mocks A and B) and falls
back to ``solo`` (mock C, also capped at one). The mocks answer 429 past one request in flight, so
any over-sending by the gateway would show in their stats.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import Gateway, MockServer, start_gateway, start_mock, stop

MOCKS = ("a", "b", "c")
MOCK_ARGS = ["--latency-ms", "400", "--max-concurrency", "1"]


def _dep(name: str, mock: MockServer) -> dict[str, Any]:
    return {
        "provider": "openai",
        "name": name,
        "base_url": f"{mock.base_url}/v1",
        "max_concurrency": 1,
        "breaker": {"consecutive_failures": 100},
    }


def _config(mocks: dict[str, MockServer]) -> dict[str, Any]:
    once = {"strategy": "ordered", "attempts_per_deployment": 1}
    return {
        "limits": {"queue": {"max_wait_seconds": 0.05}},
        "models": [
            {
                "name": "duo",
                "deployments": [_dep("duo-a", mocks["a"]), _dep("duo-b", mocks["b"])],
                "fallbacks": ["solo"],
                "routing": once,
            },
            {"name": "solo", "deployments": [_dep("solo-c", mocks["c"])], "routing": once},
        ],
    }


@pytest.fixture(scope="module")
def mocks() -> Iterator[dict[str, MockServer]]:
    with ThreadPoolExecutor(len(MOCKS)) as pool:
        started = dict(zip(MOCKS, pool.map(lambda _: start_mock(MOCK_ARGS), MOCKS), strict=True))
    yield started
    for server in started.values():
        stop(server.process)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, mocks: dict[str, MockServer]
) -> Iterator[Gateway]:
    home: Path = tmp_path_factory.mktemp("caps-home")
    config = home / "relaygate.yaml"
    config.write_text(yaml.safe_dump(_config(mocks)))
    gw = start_gateway(home, config=config)
    yield gw
    stop(gw.process)


@pytest.fixture(autouse=True)
def clean_mocks(mocks: dict[str, MockServer]) -> Iterator[None]:
    for name in MOCKS:
        fault(mocks, name, "none")
    yield
    for name in MOCKS:
        fault(mocks, name, "none")


def fault(mocks: dict[str, MockServer], name: str, kind: str) -> None:
    body: dict[str, Any] = {"kind": kind}
    if kind != "none":
        body["rate"] = 1.0
    base = mocks[name].base_url
    assert httpx.put(f"{base}/mock/faults", json=body).status_code == 200
    assert httpx.post(f"{base}/mock/stats/reset").status_code == 200


def stats(mocks: dict[str, MockServer], name: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{mocks[name].base_url}/mock/stats").json()
    return data


def post(gw: Gateway, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    headers = {"Authorization": f"Bearer {gw.api_key}"}
    return httpx.post(f"{gw.base_url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_load_spreads_over_both_capped_deployments_then_the_fallbacks_cap_is_honoured(
    gateway: Gateway, mocks: dict[str, MockServer]
) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: post(gateway, "duo"), range(4)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 200, 429], [r.text for r in results]
    busy = next(r for r in results if r.status_code == 429)
    assert busy.json()["error"]["message"].startswith("relaygate is busy: retry in ")
    assert int(busy.headers["retry-after"]) >= 1
    models = sorted(r.headers["x-relaygate-model"] for r in results if r.status_code == 200)
    assert models == ["duo", "duo", "solo"]
    for name in MOCKS:  # one request each, never two at once (the mocks would have said 429)
        seen = stats(mocks, name)
        assert seen["by_status"] == {"200": 1}, (name, seen)
        assert seen["max_in_flight"] == 1


def test_failing_deployment_fails_over_to_the_models_other_capped_one(
    gateway: Gateway, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "500")
    started = time.monotonic()
    results = [post(gateway, "duo") for _ in range(4)]
    assert [r.status_code for r in results] == [200] * 4, [r.text for r in results]
    assert all(r.headers["x-relaygate-model"] == "duo" for r in results)
    assert stats(mocks, "b")["by_status"] == {"200": 4}
    # Admission reserved A for some requests (round robin); each then failed over to B.
    assert stats(mocks, "a")["by_status"].get("500", 0) >= 1
    assert stats(mocks, "c")["requests"] == 0
    assert time.monotonic() - started < 10
