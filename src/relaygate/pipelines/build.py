"""Pipelines from settings and the built components: the job store opened, workers started."""

from __future__ import annotations

import logging

from relaygate.jobs import Job, create_job_store
from relaygate.pipelines.attempt import AttemptEnd
from relaygate.pipelines.callbacks import Callbacks
from relaygate.pipelines.compiled import CompiledPipeline, compile_pipelines
from relaygate.pipelines.gateway import GatewayPath
from relaygate.pipelines.metrics import PipelineMetrics
from relaygate.pipelines.runtime import Pipelines
from relaygate.settings import Settings
from relaygate.store import StoreUnavailableError

logger = logging.getLogger("relaygate.pipelines")


async def build_pipelines(
    settings: Settings, path: GatewayPath, *, start: bool
) -> Pipelines | None:
    """None without configured pipelines, or while a shared database is unreachable (the
    pipeline API then answers 503; restart once the database is back)."""
    if not settings.pipelines:
        return None
    store = create_job_store(settings.resolved_database_url)
    try:
        await store.open()
    except StoreUnavailableError as exc:
        logger.error("pipelines are unavailable: the job store cannot be opened: %s", exc)
        return None
    callbacks = Callbacks(store)
    compiled = compile_pipelines(settings.pipelines)
    metrics = PipelineMetrics(path.metrics.registry, compiled)

    async def on_end(pipeline: CompiledPipeline, job: Job, end: AttemptEnd) -> None:
        metrics.attempt_ended(pipeline, job, end)
        await callbacks.on_end(pipeline, job, end)

    pipelines = Pipelines(compiled, store, path, on_end, callbacks, metrics)
    if start:
        pipelines.start_workers()
        metrics.start_refreshing(store)
        callbacks.start_sweeping(compiled)
    return pipelines
