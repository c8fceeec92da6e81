"""One attempt of a job: render the prompt, extract through the gateway, report how it ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relaygate.core.errors import GatewayError
from relaygate.extraction import (
    ExtractionFailedError,
    TemplateRenderError,
    Turn,
    Validity,
    extract,
)
from relaygate.jobs import Job
from relaygate.pipelines.compiled import CompiledPipeline
from relaygate.pipelines.gateway import GatewayPath, Spent, ask_as_key


@dataclass(frozen=True, slots=True)
class Succeeded:
    value: Any
    validity: Validity


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    # What failed: "invalid" (no schema-valid JSON after the re-ask), "gateway" (the model
    # call was refused or failed), "template", "timeout" or "internal" (a gateway defect).
    reason: str


AttemptEnd = Succeeded | Failed


async def run_attempt(
    pipeline: CompiledPipeline, job: Job, path: GatewayPath, spent: Spent
) -> AttemptEnd:
    """Never raises for a failure of the attempt itself; ``spent`` collects what it cost."""
    try:
        prompt = pipeline.prompt_for(job)
    except TemplateRenderError as exc:
        return Failed(str(exc), "template")
    settings = pipeline.settings
    if job.key_name is None:
        return Failed("the job has no submitting key to bill", "gateway")
    key_name = job.key_name

    async def ask(turns: Sequence[Turn]) -> str:
        return await ask_as_key(
            path,
            key_name=key_name,
            model=settings.model,
            turns=turns,
            params=settings.params,
            request_id=f"{job.id}.{job.attempts}.{spent.calls + 1}",
            spent=spent,
        )

    try:
        extraction = await extract(prompt, pipeline.check, ask)
    except ExtractionFailedError as exc:
        return Failed(str(exc), "invalid")
    except GatewayError as exc:
        path.redactor.error(exc)
        return Failed(f"the model call failed ({exc.status} {exc.kind}): {exc.message}", "gateway")
    return Succeeded(extraction.value, extraction.validity)
