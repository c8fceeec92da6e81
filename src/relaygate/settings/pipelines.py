"""Extraction pipelines: a prompt template, a JSON Schema and a model, run as durable jobs.

The template and the schema are checked here, at start-up, with the same code that runs them
(``relaygate.extraction``), so a pipeline that loads is one that can run.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from relaygate.extraction import InvalidSchemaError, SchemaCheck, check_template

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PipelineSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    model: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    # ``schema_file`` (a JSON or YAML file, relative to the config file) is read by the loader
    # into ``schema`` before validation; both given is an error there.
    output_schema: dict[str, Any] = Field(alias="schema")
    params: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int = Field(4, ge=1, le=100)
    concurrency: int = Field(8, ge=1, le=1024)
    timeout_seconds: float = Field(120.0, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    retry_base_seconds: float = Field(2.0, gt=0)  # backoff: doubles per attempt, jittered
    callback_url: str | None = None
    # Hosts an event's own callback_url may name. Unset: any host but a loopback, private,
    # link-local or unspecified IP address (or "localhost"), so an event cannot make the gateway
    # POST into its own network. The pipeline's own callback_url (operator config) is not checked.
    callback_hosts: list[str] | None = None
    callback_secret_env: str | None = None
    callback_max_attempts: int = Field(5, ge=1, le=50)
    callback_retry_base_seconds: float = Field(1.0, gt=0)
    callback_timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("name")
    @classmethod
    def _name_is_a_path_segment(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError("a pipeline name is 1-64 letters, digits, '.', '_' or '-'")
        return name

    @field_validator("prompt")
    @classmethod
    def _template_parses(cls, prompt: str) -> str:
        check_template(prompt)
        return prompt

    @field_validator("output_schema")
    @classmethod
    def _schema_is_valid(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            SchemaCheck(schema)
        except InvalidSchemaError as exc:
            raise ValueError(str(exc)) from None
        return schema

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - PIPELINE_PARAMS)
        if unknown:
            allowed = ", ".join(sorted(PIPELINE_PARAMS))
            raise ValueError(f"unknown params {unknown}; allowed: {allowed}")
        return params


PIPELINE_PARAMS = frozenset({"temperature", "max_tokens", "top_p", "stop"})
