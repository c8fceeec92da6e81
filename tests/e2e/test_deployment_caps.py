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

from tests.e2e.server import MOCKS, Gateway, MockServer, fault, start_gateway, stats, stop

pytestmark = pytest.mark.usefixtures("clean_mocks")
# The shared ``mocks`` fixture (conftest.py) starts the module's mocks with these options.
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
def gateway(
    tmp_path_factory: pytest.TempPathFactory, mocks: dict[str, MockServer]
) -> Iterator[Gateway]:
    home: Path = tmp_path_factory.mktemp("caps-home")
    config = home / "relaygate.yaml"
    config.write_text(yaml.safe_dump(_config(mocks)))
    gw = start_gateway(home, config=config)
    yield gw
    stop(gw.process)


def post(http: httpx.Client, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    return http.post("/v1/chat/completions", json=body, timeout=30)


def test_load_spreads_over_both_capped_deployments_then_the_fallbacks_cap_is_honoured(
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: post(http, "duo"), range(4)))
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
    http: httpx.Client, mocks: dict[str, MockServer]
) -> None:
    fault(mocks, "a", "500")
    started = time.monotonic()
    results = [post(http, "duo") for _ in range(4)]
    assert [r.status_code for r in results] == [200] * 4, [r.text for r in results]
    assert all(r.headers["x-relaygate-model"] == "duo" for r in results)
    assert stats(mocks, "b")["by_status"] == {"200": 4}
    # Admission reserved A for some requests (round robin); each then failed over to B.
    assert stats(mocks, "a")["by_status"].get("500", 0) >= 1
    assert stats(mocks, "c")["requests"] == 0
    assert time.monotonic() - started < 10
