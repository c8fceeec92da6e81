"""A configured pipeline made ready to run: its template and schema compiled once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relaygate.extraction import PromptTemplate, SchemaCheck
from relaygate.jobs import Job
from relaygate.settings import PipelineSettings, resolve_api_key


@dataclass(frozen=True, slots=True)
class CompiledPipeline:
    settings: PipelineSettings
    template: PromptTemplate
    check: SchemaCheck
    callback_secret: str | None

    @property
    def name(self) -> str:
        return self.settings.name

    def prompt_for(self, job: Job) -> str:
        """The prompt for ``job``: the event's ``data`` fields are the template's variables, and
        ``data`` and ``event_id`` themselves too."""
        variables: dict[str, Any] = {**job.data, "data": job.data, "event_id": job.event_id}
        return self.template.render(variables)


def compile_pipelines(pipelines: list[PipelineSettings]) -> dict[str, CompiledPipeline]:
    return {
        p.name: CompiledPipeline(
            p,
            PromptTemplate(p.prompt),
            SchemaCheck(p.output_schema),
            resolve_api_key(p.callback_secret_env),
        )
        for p in pipelines
    }
