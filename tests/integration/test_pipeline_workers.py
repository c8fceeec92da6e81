"""Pipeline jobs run in process through the gateway's request path, billed to their key."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.pipeline_support import ORDER, content, gateway, pipeline_config, poll

from relaygate.jobs import Job
from relaygate.services import Services


async def submit(services: Services, event_id: str, text: str) -> Job:
    assert services.pipelines is not None and services.bootstrap is not None
    pipeline = services.pipelines.get("orders")
    assert pipeline is not None
    key = services.bootstrap.key.name
    job, created = await services.pipelines.submit(
        pipeline, event_id=event_id, key_name=key, data={"content": text}, callback_url=None
    )
    assert created
    return job


async def finished(services: Services, job_id: str) -> Job:
    assert services.pipelines is not None
    pipelines = services.pipelines

    async def done() -> Job | None:
        job = await pipelines.job(job_id)
        return job if job is not None and job.status in ("succeeded", "dead") else None

    return await poll(done)


@pytest.mark.parametrize(
    ("mode", "validity"),
    [("plain", "first_try"), ("prose", "first_try"), ("fenced", "first_try"),
     ("broken", "first_try"), ("reask", "after_reask")],
)  # fmt: skip
async def test_answers_in_every_shape_become_the_validated_result(
    tmp_path: Path, mode: str, validity: str
) -> None:
    async with gateway(pipeline_config(tmp_path)) as services:
        job = await submit(services, "ev-1", content(mode))
        done = await finished(services, job.id)
        assert (done.status, done.result, done.validity, done.attempts) == (
            "succeeded", ORDER, validity, 1,
        )  # fmt: skip
        assert done.cost_usd > 0 and done.input_tokens > 0 and done.output_tokens > 0


async def test_each_model_call_is_a_ledger_row_of_the_submitting_key(tmp_path: Path) -> None:
    async with gateway(pipeline_config(tmp_path)) as services:
        job = await submit(services, "ev-1", content("reask"))
        done = await finished(services, job.id)
        ledger = services.accounting.store
        assert ledger is not None and services.bootstrap is not None

        async def rows() -> list[object] | None:
            found = [r for r in await ledger.recent_rows(10) if r.request_id.startswith(job.id)]
            return found if len(found) == 2 else None

        found = await poll(rows)
        assert {r.key_name for r in found} == {services.bootstrap.key.name}  # type: ignore[attr-defined]
        assert {r.route for r in found} == {"pipeline.chat"}  # type: ignore[attr-defined]
        assert sum(r.cost_usd for r in found) == pytest.approx(done.cost_usd)  # type: ignore[attr-defined]


async def test_a_never_valid_answer_retries_then_the_job_is_dead(tmp_path: Path) -> None:
    async with gateway(pipeline_config(tmp_path)) as services:
        job = await submit(services, "ev-1", content("never"))
        dead = await finished(services, job.id)
        assert (dead.status, dead.attempts, len(dead.errors)) == ("dead", 3, 3)
        assert all("after the corrective re-ask" in e for e in dead.errors)
        assert dead.error is not None and "holds no JSON" in dead.error


async def test_a_key_not_allowed_the_model_fails_its_job(tmp_path: Path) -> None:
    async with gateway(pipeline_config(tmp_path, max_attempts=1)) as services:
        assert services.bootstrap is not None
        await services.store.update_key(services.bootstrap.key.name, allowed_models=["other"])
        await services.keys.reload()
        job = await submit(services, "ev-1", content("plain"))
        dead = await finished(services, job.id)
        assert dead.status == "dead"
        assert dead.error is not None and "403" in dead.error and "mock-x" in dead.error


async def test_stopping_the_workers_gives_running_jobs_back_to_the_queue(tmp_path: Path) -> None:
    config = pipeline_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            "provider: mock", "mock:\n      latency_ms: 5000\n    provider: mock"
        )
    )
    async with gateway(config) as services:
        job = await submit(services, "ev-1", content("plain"))
        assert services.pipelines is not None
        pipelines = services.pipelines

        async def running() -> Job | None:
            found = await pipelines.job(job.id)
            return found if found is not None and found.status == "running" else None

        await poll(running)
        await pipelines.stop_workers()
        released = await pipelines.job(job.id)
        assert released is not None
        assert (released.status, released.attempts, released.errors) == ("queued", 0, ())
        assert released.lease_token is None


async def test_an_unexpected_error_in_an_attempt_is_recorded_on_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaygate.pipelines import worker

    async def broken(*args: object) -> object:
        raise KeyError("surprise")

    monkeypatch.setattr(worker, "run_attempt", broken)
    async with gateway(pipeline_config(tmp_path, max_attempts=1)) as services:
        job = await submit(services, "ev-1", content("plain"))
        dead = await finished(services, job.id)
        assert (dead.status, dead.error) == ("dead", "internal gateway error (KeyError)")
