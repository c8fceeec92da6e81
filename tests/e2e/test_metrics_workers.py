"""``relaygate serve --workers 2``: every scrape of /metrics reports the whole gateway's totals,
whichever worker answers it (not that worker's own counters).

Another worker's values reach a scrape within its publishing interval (about a second): the test
waits for one scrape with the full total, then every later scrape must report it too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import emptied_redis_db
from tests.e2e.server import Gateway, start_gateway, stop
from tests.waiting import wait_until

# A Redis database of this test's own: the shared fixture's database 15 may be in use by others.
METRICS_REDIS_DB = 9
REQUESTS = 40
SCRAPES = 8
CONFIG: dict[str, Any] = {
    "models": [{"name": "quick", "deployments": [{"provider": "mock", "name": "quick-0"}]}],
}


@pytest.fixture
async def workers_redis_url(redis_server_url: str) -> AsyncIterator[str]:
    async with emptied_redis_db(redis_server_url, METRICS_REDIS_DB) as url:
        yield url


@pytest.fixture
def two_workers(tmp_path: Path, workers_redis_url: str) -> Iterator[Gateway]:
    config = tmp_path / "metrics.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = {"RELAYGATE_WORKERS": "2", "RELAYGATE_REDIS_URL": workers_redis_url}
    gw = start_gateway(tmp_path / "home", config=config, env=env)
    yield gw
    stop(gw.process)


def scrape(gw: Gateway) -> str:
    # A fresh connection per scrape, so successive scrapes land on different workers.
    response = httpx.get(f"{gw.base_url}/metrics", timeout=30)
    assert response.status_code == 200
    return response.text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], sample: str) -> float:
    return sum(
        value
        for (name, labels), value in found.items()
        if name == sample and ("model", "quick") in labels
    )


def send_requests_to_both_workers(gw: Gateway) -> None:
    """``REQUESTS`` chat requests, then wait until one scrape reports every one of them."""
    body = {"model": "quick", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {gw.api_key}"}
    for _ in range(REQUESTS):
        # A fresh connection per request, so the two workers share them.
        answer = httpx.post(
            f"{gw.base_url}/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        assert answer.status_code == 200
    wait_until(
        lambda: total(samples(scrape(gw)), "relaygate_requests_total") == REQUESTS,
        what="a scrape with every worker's requests",
    )


@pytest.mark.redis
def test_every_scrape_reports_the_requests_of_all_workers(two_workers: Gateway) -> None:
    gw = two_workers
    send_requests_to_both_workers(gw)
    for _ in range(SCRAPES):
        text = scrape(gw)
        found = samples(text)
        assert total(found, "relaygate_requests_total") == REQUESTS, text
        assert total(found, "relaygate_request_duration_seconds_count") == REQUESTS
        # Scrape-time gauges of every worker are there, each series once.
        assert found[("relaygate_ready", ())] == 1
        assert found[("relaygate_asyncio_tasks", ())] > 0
        assert 'pid="' not in text  # every gauge merged, none split per process
        series = [line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")]
        assert [s for s, n in Counter(series).items() if n > 1] == []


@pytest.mark.redis
def test_the_dashboard_shows_every_workers_requests(two_workers: Gateway) -> None:
    gw = two_workers
    send_requests_to_both_workers(gw)
    for _ in range(SCRAPES):
        # A fresh client (connection) each time: the login and the page may reach either worker.
        with httpx.Client(base_url=gw.base_url, timeout=30) as browser:
            login = browser.post(
                "/dashboard/login",
                data={"token": gw.admin_token},
                headers={"origin": gw.base_url},
            )
            assert login.status_code == 303
            live = browser.get("/dashboard/live")
            assert live.status_code == 200
            assert f'id="stat-requests">{REQUESTS}<' in live.text
