"""Pipelines across real processes sharing PostgreSQL: duplicate events arriving at the same
instant on two gateways make one job; a worker killed with SIGKILL mid-job loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.server import Gateway, start_gateway, stop
from tests.integration.pipeline_support import ORDER, content, pipeline_config
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres


def job(gw: Gateway, job_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{gw.base_url}/v1/jobs/{job_id}", headers=auth(gw.api_key))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def two_gateways(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Gateway, Gateway]]:
    config = pipeline_config(tmp_path, postgres_url)
    first = start_gateway(tmp_path / "a", config, database_url=postgres_url)
    try:
        second = start_gateway(
            tmp_path / "b", config, database_url=postgres_url,
            credentials=(first.api_key, first.admin_token),
        )  # fmt: skip
    except BaseException:
        stop(first.process)
        raise
    yield first, second
    stop(second.process)
    stop(first.process)


def test_duplicates_arriving_together_on_two_processes_make_one_job(
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    first, second = two_gateways
    events = [{"event_id": f"ev-{i}", "data": {"content": content("plain")}} for i in range(30)]

    def send_together(event: dict[str, Any]) -> list[httpx.Response]:
        barrier = threading.Barrier(4)

        def send(gw: Gateway) -> httpx.Response:
            barrier.wait()
            return httpx.post(
                f"{gw.base_url}/v1/pipelines/orders/events", json=event, headers=auth(gw.api_key)
            )

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(send, [first, second, first, second]))

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(send_together, events))
    job_ids = set()
    for answers in results:
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 200, 200, 202], [a.text for a in answers]
        ids = {a.json()["job_id"] for a in answers}
        assert len(ids) == 1
        job_ids |= ids
    assert len(job_ids) == 30
    for job_id in job_ids:
        wait_until(lambda j=job_id: job(first, j)["status"] == "succeeded", timeout=30)  # type: ignore[misc]
    listed = httpx.get(
        f"{second.base_url}/v1/pipelines/orders/jobs?limit=200", headers=auth(second.api_key)
    ).json()
    assert {j["id"] for j in listed["jobs"]} == job_ids


def stored_job(url: str, job_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        conn = await asyncpg.connect(url)
        try:
            row = await conn.fetchrow("SELECT * FROM pipeline_jobs WHERE id = $1", job_id)
        finally:
            await conn.close()
        assert row is not None
        return dict(row)

    return asyncio.run(read())


def start_worker(home: Path, config: Path, database_url: str) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "relaygate.cli.main", "worker", "--config", str(config)]
    args += ["--home", str(home), "--database-url", database_url]
    log = (home / "worker.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k != "RELAYGATE_DATABASE_URL"}
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    wait_until(lambda: "running pipelines" in (home / "worker.log").read_text(), timeout=30)
    return process


def test_a_job_whose_worker_is_killed_mid_attempt_completes_exactly_once(
    tmp_path: Path, postgres_url: str
) -> None:
    config = pipeline_config(tmp_path, postgres_url, lease_seconds=2)
    text = config.read_text().replace(
        "provider: mock", "mock:\n      latency_ms: 3000\n    provider: mock"
    )
    config.write_text(text)
    gw = start_gateway(tmp_path / "a", config, database_url=postgres_url)
    worker: subprocess.Popen[bytes] | None = None
    try:
        body = {"event_id": "ev-kill", "data": {"content": content("plain")}}
        posted = httpx.post(
            f"{gw.base_url}/v1/pipelines/orders/events", json=body, headers=auth(gw.api_key)
        )
        job_id = posted.json()["job_id"]
        wait_until(lambda: job(gw, job_id)["status"] == "running", timeout=10)
        gw.process.send_signal(signal.SIGKILL)
        gw.process.wait()
        worker = start_worker(tmp_path / "w", config, postgres_url)
        done = wait_until(
            lambda: (
                (row := stored_job(postgres_url, job_id))["status"] in ("succeeded", "dead") and row
            ),
            timeout=40,
        )
        assert done["status"] == "succeeded" and json.loads(done["result"]) == ORDER
        assert done["attempts"] == 2
        assert json.loads(done["errors"]) == [
            "attempt 1: the worker stopped before it finished (its lease expired)"
        ]
        assert done["lease_token"] is None
    finally:
        if worker is not None:
            stop(worker)
        stop(gw.process)
