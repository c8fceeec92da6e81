"""Callbacks: the finished job's document, signed as the README says, retried, outcome recorded."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from tests.integration.pipeline_support import ORDER, content, gateway, pipeline_config, poll

from relaygate.jobs import Job, NewJob, Usage
from relaygate.services import Services

SECRET = "whsec-test-secret"


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The receiver's check, as in the README."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp, received = fields["t"], fields["v1"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), received)


@dataclass
class Receiver:
    url: str
    failures_left: int = 0
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver("")

    async def hook(request: web.Request) -> web.Response:
        state.calls.append((dict(request.headers), await request.read()))
        if state.failures_left:
            state.failures_left -= 1
            return web.Response(status=503, text="busy")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/hook"
    yield state
    await runner.cleanup()


async def run_job(services: Services, text: str, callback: str) -> Job:
    assert services.pipelines is not None and services.bootstrap is not None
    pipeline = services.pipelines.get("orders")
    assert pipeline is not None
    job, _ = await services.pipelines.submit(
        pipeline, event_id="ev-1", key_name=services.bootstrap.key.name,
        data={"content": text}, callback_url=callback,
    )  # fmt: skip
    pipelines = services.pipelines

    async def recorded() -> Job | None:
        found = await pipelines.job(job.id)
        ended = found is not None and found.callback_status in ("delivered", "failed")
        return found if ended else None

    return await poll(recorded)


def config(tmp_path: Path, **fields: Any) -> Path:
    return pipeline_config(
        tmp_path, callback_secret_env="PIPELINE_SECRET", callback_retry_base_seconds=0.02,
        max_attempts=1, **fields,
    )  # fmt: skip


async def test_a_signed_callback_is_retried_until_delivered(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_SECRET", SECRET)
    receiver.failures_left = 2
    async with gateway(config(tmp_path), env=os.environ) as services:
        job = await run_job(services, content("fenced"), receiver.url)
    assert (job.callback_status, job.callback_attempts, job.callback_error) == (
        "delivered",
        3,
        None,
    )
    assert len(receiver.calls) == 3
    headers, body = receiver.calls[-1]
    assert verify(SECRET, headers["x-relaygate-signature"], body)
    assert not verify("wrong-secret", headers["x-relaygate-signature"], body)
    assert not verify(SECRET, headers["x-relaygate-signature"], body + b" ")
    document = orjson.loads(body)
    assert (document["id"], document["status"], document["result"]) == (job.id, "succeeded", ORDER)


async def test_a_dead_job_is_called_back_and_a_failing_receiver_is_recorded(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_SECRET", SECRET)
    receiver.failures_left = 100
    async with gateway(config(tmp_path, callback_max_attempts=3), env=os.environ) as services:
        job = await run_job(services, content("never"), receiver.url)
    assert (job.status, job.callback_status, job.callback_attempts) == ("dead", "failed", 3)
    assert job.callback_error == "HTTP 503: busy"
    assert orjson.loads(receiver.calls[0][1])["status"] == "dead"


async def test_a_callback_left_pending_by_a_stopped_process_is_swept_and_delivered(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_SECRET", SECRET)
    async with gateway(config(tmp_path), workers=False, env=os.environ) as services:
        pipelines = services.pipelines
        assert pipelines is not None and pipelines.callbacks is not None
        store = pipelines.store
        new = NewJob("orders", "ev-left", "default", {"content": "x"}, 1, receiver.url)
        job, _ = await store.insert(new, datetime.now(UTC))
        (running,) = await store.claim("orders", 1, datetime.now(UTC), datetime.now(UTC))
        assert running.lease_token
        now = datetime.now(UTC)
        ended = await store.succeed(job.id, running.lease_token, ORDER, "first_try", Usage(), now)
        assert ended is not None and ended.callback_status == "pending"
        assert await pipelines.callbacks.sweep(pipelines.pipelines, grace_seconds=3600) == 0
        assert await pipelines.callbacks.sweep(pipelines.pipelines, grace_seconds=0) == 1

        async def delivered() -> Job | None:
            found = await store.get(job.id)
            return found if found is not None and found.callback_status == "delivered" else None

        await poll(delivered)
    assert len(receiver.calls) == 1
    headers, body = receiver.calls[0]
    assert verify(SECRET, headers["x-relaygate-signature"], body)
