"""The dashboard's jobs page: per-pipeline counts, a dead letter, and its retry button."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from tests.integration.pipeline_support import content, gateway, pipeline_config, poll

from relaygate.app import RelaygateApp
from relaygate.jobs import Job

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


async def test_a_dead_job_is_listed_and_retried_from_the_dashboard(tmp_path: Path) -> None:
    config = pipeline_config(tmp_path, max_attempts=1)
    async with gateway(config) as services:
        assert services.pipelines is not None and services.bootstrap is not None
        pipelines = services.pipelines
        job, _ = await pipelines.submit(
            pipelines.pipelines["orders"],
            event_id="never",
            key_name=services.bootstrap.key.name,
            data={"content": content("never")},
            callback_url=None,
        )

        async def dead() -> Job | None:
            found = await pipelines.job(job.id)
            return found if found is not None and found.status == "dead" else None

        await poll(dead)
        await pipelines.stop_workers()  # so the retried job stays queued for the check below
        app = RelaygateApp(services.settings)
        app.services = services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            token = services.bootstrap.admin_token
            assert (await http.post("/dashboard/login", data={"token": token})).status_code == 303
            page = await http.get("/dashboard/jobs")
            assert page.status_code == 200
            assert job.id in page.text and "Retry" in page.text
            csrf = CSRF_FIELD.search(page.text)
            assert csrf is not None
            refused = await http.post("/dashboard/jobs/retry", data={"job_id": job.id})
            assert refused.status_code == 403
            retried = await http.post(
                "/dashboard/jobs/retry", data={"job_id": job.id, "csrf": csrf.group(1)}
            )
            assert retried.status_code == 303
            again = await pipelines.job(job.id)
            assert (again is not None and again.status != "dead") or again.attempts > 1
            cache = await http.get("/dashboard/cache")
            assert cache.status_code == 200 and "cache is off" in cache.text
