"""Pipeline metrics. The ``pipeline`` label takes only configured pipeline names (a caller's
unknown name never becomes a label); every other label comes from fixed sets in the code."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relaygate.core.background import BackgroundTask
from relaygate.jobs import JOB_STATUSES, Job, JobStore
from relaygate.pipelines.attempt import AttemptEnd, Failed
from relaygate.pipelines.compiled import CompiledPipeline
from relaygate.store import StoreError

logger = logging.getLogger("relaygate.pipelines")
JOB_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
REFRESH_SECONDS = 5.0


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry, names: Iterable[str]) -> None:
        self._names = frozenset(names)
        self.events = Counter(
            "relaygate_pipeline_events",
            "Events received, by pipeline and result (queued or duplicate)",
            ("pipeline", "result"),
            registry=registry,
        )
        self.jobs = Gauge(
            "relaygate_pipeline_jobs",
            "Jobs in the store by pipeline and status (queued + failed is the queue depth)",
            ("pipeline", "status"),
            registry=registry,
        )
        self.attempts = Counter(
            "relaygate_pipeline_attempts",
            "Job attempts ended, by outcome (succeeded or why it failed)",
            ("pipeline", "outcome"),
            registry=registry,
        )
        self.extractions = Counter(
            "relaygate_pipeline_extractions",
            "Extraction validity: first_try, after_reask or failed",
            ("pipeline", "validity"),
            registry=registry,
        )
        self.job_seconds = Histogram(
            "relaygate_pipeline_job_duration_seconds",
            "From event accepted to job succeeded or dead",
            ("pipeline", "status"),
            buckets=JOB_SECONDS_BUCKETS,
            registry=registry,
        )
        self._refresher: BackgroundTask | None = None

    def event(self, pipeline: str, created: bool) -> None:
        if pipeline in self._names:
            self.events.labels(pipeline, "queued" if created else "duplicate").inc()

    def attempt_ended(self, pipeline: CompiledPipeline, job: Job, end: AttemptEnd) -> None:
        name = pipeline.name
        if isinstance(end, Failed):
            self.attempts.labels(name, end.reason).inc()
            if end.reason == "invalid":
                self.extractions.labels(name, "failed").inc()
        else:
            self.attempts.labels(name, "succeeded").inc()
            self.extractions.labels(name, end.validity).inc()
        if job.status in ("succeeded", "dead") and job.finished_at is not None:
            seconds = (job.finished_at - job.created_at).total_seconds()
            self.job_seconds.labels(name, job.status).observe(max(0.0, seconds))

    async def refresh(self, store: JobStore) -> None:
        counts = await store.count_by_status()
        for name in self._names:
            for status in JOB_STATUSES:
                self.jobs.labels(name, status).set(counts.get((name, status), 0))

    def start_refreshing(self, store: JobStore, every: float = REFRESH_SECONDS) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.refresh(store)
                except StoreError as exc:
                    logger.warning("pipeline job counts not refreshed: %s", exc)
                await asyncio.sleep(every)

        self._refresher = BackgroundTask("pipeline-metrics", loop)
        self._refresher.start()

    async def stop(self) -> None:
        if self._refresher is not None:
            await self._refresher.cancel()
