"""The pipeline HTTP API in process: events, duplicates, bad input, job documents, lists, retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.pipeline_support import ORDER, content, gateway, pipeline_config, poll

from relaygate.app import RelaygateApp
from relaygate.auth.keys import new_api_key
from relaygate.services import Services
from relaygate.store import KeySpec


@dataclass
class Api:
    client: httpx.AsyncClient
    services: Services
    key: str

    async def event(
        self, body: Any, key: str | None = None, pipeline: str = "orders"
    ) -> httpx.Response:
        kw: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        return await self.client.post(
            f"/v1/pipelines/{pipeline}/events", headers=auth(key or self.key), **kw
        )

    async def get(self, path: str, key: str | None = None) -> httpx.Response:
        return await self.client.get(path, headers=auth(key or self.key))

    async def job_when(self, job_id: str, *statuses: str) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            job: dict[str, Any] = (await self.get(f"/v1/jobs/{job_id}")).json()
            return job if job["status"] in statuses else None

        return await poll(check)

    async def add_key(self, name: str, **fields: Any) -> str:
        made = new_api_key()
        spec = KeySpec(name=name, key_hash=made.key_hash, key_prefix=made.key_prefix, **fields)
        await self.services.store.create_key(spec)
        await self.services.keys.reload()
        return made.raw_key


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with gateway(pipeline_config(tmp_path, max_attempts=2)) as services:
        app = RelaygateApp(services.settings)
        app.services = services
        assert services.bootstrap is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Api(client, services, services.bootstrap.api_key)


async def test_an_event_is_queued_once_and_its_job_reports_the_result(api: Api) -> None:
    event = {"event_id": "ev-1", "data": {"content": content("prose")}}
    first = await api.event(event)
    assert first.status_code == 202
    job_id = first.json()["job_id"]
    assert first.json() == {"job_id": job_id, "status": "queued"}
    again = await api.event(event)
    assert again.status_code == 200
    assert again.json()["job_id"] == job_id and again.json()["duplicate"] is True
    job = await api.job_when(job_id, "succeeded")
    assert job["result"] == ORDER and job["attempts"] == 1 and job["error"] is None
    assert job["pipeline"] == "orders" and job["event_id"] == "ev-1"
    assert job["cost_usd"] > 0 and job["tokens"]["input"] > 0
    assert job["started_at"] and job["finished_at"] and job["created_at"]


async def test_simultaneous_duplicates_make_one_job(api: Api) -> None:
    event = {"event_id": "ev-same", "data": {"content": content("plain")}}
    answers = await asyncio.gather(*(api.event(event) for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [200] * 9 + [202]
    assert len({a.json()["job_id"] for a in answers}) == 1


@pytest.mark.parametrize(
    ("body", "pipeline", "status", "words"),
    [
        ({"data": {"content": "x"}}, "orders", 400, "event_id is required"),
        ({"event_id": "e", "data": "text"}, "orders", 400, "data is required"),
        (b"{not json", "orders", 400, "not valid JSON"),
        ({"event_id": "e", "data": {}, "callback_url": "ftp://x"}, "orders", 400, "callback_url"),
        *(
            ({"event_id": "e", "data": {}, "callback_url": url}, "orders", 400, "loopback")
            for url in (
                "http://127.0.0.1:6379/",
                "http://localhost/hook",
                "http://10.1.2.3/hook",
                "http://169.254.169.254/latest/meta-data",
                "http://[::1]/hook",
                "http://0.0.0.0/",
            )
        ),
        ({"event_id": "e", "data": {}}, "invoices", 404, "Unknown pipeline 'invoices'"),
        (
            b'{"event_id": "e", "data": {"content": "' + b"x" * 1_100_000 + b'"}}',
            "orders",
            413,
            "larger",
        ),
    ],
)
async def test_bad_events_get_a_clear_4xx_and_store_nothing(
    api: Api, body: Any, pipeline: str, status: int, words: str
) -> None:
    answer = await api.event(body, pipeline=pipeline)
    assert answer.status_code == status
    assert words in answer.json()["error"]["message"]
    listed = (await api.get("/v1/pipelines/orders/jobs")).json()
    assert listed == {"jobs": [], "next_cursor": None}


async def test_keys_see_only_their_own_jobs_and_need_the_model(api: Api) -> None:
    job_id = (await api.event({"event_id": "e", "data": {"content": content("plain")}})).json()[
        "job_id"
    ]
    other = await api.add_key("other")
    assert (await api.get(f"/v1/jobs/{job_id}", key=other)).status_code == 404
    assert (await api.get("/v1/pipelines/orders/jobs", key=other)).json()["jobs"] == []
    retry = await api.client.post(f"/v1/jobs/{job_id}/retry", headers=auth(other))
    assert retry.status_code == 404
    limited = await api.add_key("limited", allowed_models=("mock-other",))
    refused = await api.event({"event_id": "e2", "data": {}}, key=limited)
    assert refused.status_code == 403 and "mock-x" in refused.json()["error"]["message"]
    assert (await api.get("/v1/jobs/job_nope")).status_code == 404
    assert (await api.client.get(f"/v1/jobs/{job_id}")).status_code == 401


async def test_lists_page_by_cursor_and_filter_by_status_then_a_dead_job_is_retried(
    api: Api,
) -> None:
    ids = []
    for i in range(3):
        answer = await api.event({"event_id": f"ok-{i}", "data": {"content": content("plain")}})
        ids.append(answer.json()["job_id"])
    dead_id = (await api.event({"event_id": "bad", "data": {"content": content("never")}})).json()[
        "job_id"
    ]
    dead = await api.job_when(dead_id, "dead")
    assert dead["attempts"] == 2 and len(dead["errors"]) == 2
    for job_id in ids:
        await api.job_when(job_id, "succeeded")
    page = (await api.get("/v1/pipelines/orders/jobs?limit=2")).json()
    assert [j["id"] for j in page["jobs"]] == [dead_id, ids[2]]
    rest = (await api.get(f"/v1/pipelines/orders/jobs?limit=2&cursor={page['next_cursor']}")).json()
    assert [j["id"] for j in rest["jobs"]] == [ids[1], ids[0]] and rest["next_cursor"] is None
    only_dead = (await api.get("/v1/pipelines/orders/jobs?status=dead")).json()
    assert [j["id"] for j in only_dead["jobs"]] == [dead_id]
    bad = await api.get("/v1/pipelines/orders/jobs?status=lost")
    assert bad.status_code == 400
    not_dead = await api.client.post(f"/v1/jobs/{ids[0]}/retry", headers=auth(api.key))
    assert not_dead.status_code == 400 and "succeeded" in not_dead.json()["error"]["message"]
    retried = await api.client.post(f"/v1/jobs/{dead_id}/retry", headers=auth(api.key))
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
    again = await api.job_when(dead_id, "dead")
    assert len(again["errors"]) == 4  # every attempt's error kept across the retry


async def test_metrics_count_events_attempts_validity_and_jobs_by_configured_pipeline(
    api: Api,
) -> None:
    event = {"event_id": "m-1", "data": {"content": content("reask")}}
    job_id = (await api.event(event)).json()["job_id"]
    await api.event(event)
    await api.event({"event_id": "m-2", "data": {}}, pipeline="sneaky-name")
    await api.job_when(job_id, "succeeded")
    assert api.services.pipelines is not None and api.services.pipelines.metrics is not None
    await api.services.pipelines.metrics.refresh(api.services.pipelines.store)
    text = (await api.client.get("/metrics")).text
    for sample in (
        'relaygate_pipeline_events_total{pipeline="orders",result="queued"} 1.0',
        'relaygate_pipeline_events_total{pipeline="orders",result="duplicate"} 1.0',
        'relaygate_pipeline_attempts_total{outcome="succeeded",pipeline="orders"} 1.0',
        'relaygate_pipeline_extractions_total{pipeline="orders",validity="after_reask"} 1.0',
        'relaygate_pipeline_jobs{pipeline="orders",status="succeeded"} 1.0',
        'relaygate_pipeline_jobs{pipeline="orders",status="queued"} 0.0',
        'relaygate_pipeline_job_duration_seconds_count{pipeline="orders",status="succeeded"} 1.0',
    ):
        assert sample in text, sample
    assert "sneaky-name" not in text
