"""``Pipelines``: the configured pipelines, their job store and this process's workers; what the
HTTP API, ``relaygate worker`` and ``relaygate batch`` use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from relaygate.jobs import Job, JobPage, JobStatus, JobStore, NewJob
from relaygate.pipelines.callbacks import Callbacks
from relaygate.pipelines.compiled import CompiledPipeline
from relaygate.pipelines.gateway import GatewayPath
from relaygate.pipelines.group_commit import GroupCommit
from relaygate.pipelines.metrics import PipelineMetrics
from relaygate.pipelines.worker import OnEnd, PipelineWorker


class Pipelines:
    def __init__(
        self,
        pipelines: Mapping[str, CompiledPipeline],
        store: JobStore,
        path: GatewayPath,
        on_end: OnEnd | None = None,
        callbacks: Callbacks | None = None,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self.pipelines = dict(pipelines)
        self.store = store
        self.path = path
        self._on_end = on_end
        self.callbacks = callbacks
        self.metrics = metrics
        self._workers: dict[str, PipelineWorker] = {}
        # Events arriving together are stored in one write; each is answered once it is durable.
        self._intake: GroupCommit[NewJob, tuple[Job, bool]] = GroupCommit(self._insert_many)

    def get(self, name: str) -> CompiledPipeline | None:
        return self.pipelines.get(name)

    def start_workers(self, *, poll_seconds: float | None = None) -> None:
        for name, pipeline in self.pipelines.items():
            if name in self._workers:
                continue
            options = {} if poll_seconds is None else {"poll_seconds": poll_seconds}
            worker = PipelineWorker(pipeline, self.store, self.path, self._on_end, **options)
            self._workers[name] = worker
            worker.start()

    async def stop_workers(self) -> None:
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            await worker.stop()

    async def close(self) -> None:
        await self.stop_workers()
        await self._intake.close()
        if self.metrics is not None:
            await self.metrics.stop()
        if self.callbacks is not None:
            await self.callbacks.close()
        await self.store.close()

    async def submit(
        self,
        pipeline: CompiledPipeline,
        *,
        event_id: str,
        key_name: str,
        data: dict[str, Any],
        callback_url: str | None,
    ) -> tuple[Job, bool]:
        """Queue the event's job, or find the one already queued for it: (job, created)."""
        settings = pipeline.settings
        new = NewJob(
            settings.name,
            event_id,
            key_name,
            data,
            settings.max_attempts,
            callback_url or settings.callback_url,
        )
        job, created = await self._intake.submit(new)
        if self.metrics is not None:
            self.metrics.event(settings.name, created)
        worker = self._workers.get(settings.name)
        if created and worker is not None:
            worker.wake()
        return job, created

    async def _insert_many(self, jobs: Sequence[NewJob]) -> list[tuple[Job, bool]]:
        return await self.store.insert_many(jobs, datetime.now(UTC))

    async def job(self, job_id: str) -> Job | None:
        return await self.store.get(job_id)

    async def list_jobs(
        self,
        name: str,
        *,
        key_name: str | None,
        status: JobStatus | None,
        limit: int,
        cursor: str | None,
    ) -> JobPage:
        return await self.store.list_jobs(
            name, status=status, key_name=key_name, limit=limit, cursor=cursor
        )

    async def retry(self, job_id: str) -> Job | None:
        job = await self.store.requeue(job_id, datetime.now(UTC))
        if job is not None and job.pipeline in self._workers:
            self._workers[job.pipeline].wake()
        return job
