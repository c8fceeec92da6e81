"""Jobs (per pipeline counts, dead letters with a retry button) and the response cache's gains."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from relaygate.dashboard.live import samples
from relaygate.dashboard.render import redirect
from relaygate.dashboard.view import View

DEAD_LETTERS_SHOWN = 20
CACHE_SERIES = frozenset(
    {
        "relaygate_cache_requests_total",
        "relaygate_cache_tokens_saved_total",
        "relaygate_cache_saved_usd_total",
        "relaygate_cache_bytes",
        "relaygate_cache_entries",
        "relaygate_cache_evictions_total",
        "relaygate_cache_backend_errors_total",
        "relaygate_cache_hit_ratio",
    }
)
JOB_COUNTS = frozenset({"relaygate_pipeline_jobs"})


async def jobs_page(view: View) -> None:
    pipelines = view.services.pipelines
    counts: dict[str, dict[str, float]] = defaultdict(dict)
    for sample in samples(view.services.metrics.gateway_view(), JOB_COUNTS).get(
        "relaygate_pipeline_jobs", []
    ):
        counts[sample.labels.get("pipeline", "")][sample.labels.get("status", "")] = sample.value
    dead: dict[str, list[Any]] = {}
    if pipelines is not None:
        for name in sorted(pipelines.pipelines):
            page = await pipelines.list_jobs(
                name, key_name=None, status="dead", limit=DEAD_LETTERS_SHOWN, cursor=None
            )
            dead[name] = page.jobs
    await view.page(
        "jobs.html",
        active="jobs",
        configured=pipelines is not None,
        names=sorted(pipelines.pipelines) if pipelines is not None else [],
        counts=counts,
        dead=dead,
        done=view.text("done"),
    )


async def retry_job(view: View) -> None:
    pipelines = view.services.pipelines
    job_id = view.text("job_id", "form")
    job = await pipelines.retry(job_id) if pipelines is not None and job_id else None
    if job is None:
        message = "Only a dead or failed job can be retried; it may have been retried already."
        await view.page("error.html", 409, message=message)
        return
    await redirect(view.send, "/dashboard/jobs?done=retried")


async def cache_page(view: View) -> None:
    found = samples(view.services.metrics.gateway_view(), CACHE_SERIES)
    by_model: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for sample in found.get("relaygate_cache_requests_total", []):
        by_model[sample.labels["model"]][sample.labels["result"]] += sample.value
    for series, column in (
        ("relaygate_cache_tokens_saved_total", "tokens_saved"),
        ("relaygate_cache_saved_usd_total", "saved_usd"),
        ("relaygate_cache_hit_ratio", "hit_ratio"),
    ):
        for sample in found.get(series, []):
            by_model[sample.labels["model"]][column] += sample.value

    def total(series: str) -> float | None:
        values = found.get(series)
        return sum(s.value for s in values) if values else None

    await view.page(
        "cache.html",
        active="cache",
        enabled=view.services.cache is not None,
        models={name: dict(values) for name, values in sorted(by_model.items())},
        bytes=total("relaygate_cache_bytes"),
        entries=total("relaygate_cache_entries"),
        evictions=total("relaygate_cache_evictions_total"),
        backend_errors=total("relaygate_cache_backend_errors_total"),
        tokens_saved=total("relaygate_cache_tokens_saved_total"),
        saved_usd=total("relaygate_cache_saved_usd_total"),
    )
