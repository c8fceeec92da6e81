"""The settings schema: frozen pydantic models validated once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from relaygate.settings.accounting import AccountingSettings
from relaygate.settings.alerts import AlertSettings
from relaygate.settings.cache import CacheSettings
from relaygate.settings.limits import LimitSettings
from relaygate.settings.pipelines import PipelineSettings
from relaygate.settings.routing import BreakerSettings, RoutingSettings
from relaygate.settings.sessions import SessionPolicySettings, SessionSettings


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeoutSettings(_Frozen):
    """Seconds to connect, to the first response byte, for the whole upstream call, and at most
    between two chunks of a streamed answer (``idle``)."""

    connect: float = Field(10.0, gt=0)
    first_byte: float = Field(60.0, gt=0)
    total: float = Field(600.0, gt=0)
    idle: float = Field(60.0, gt=0)


class MockFaultSettings(_Frozen):
    """Mock faults: ``rate`` of requests fail with ``kind``, or the first ``first_n`` do."""

    kind: Literal["none", "429", "500", "529", "hang", "drop", "malformed", "json"] = "none"
    rate: float = Field(0.0, ge=0, le=1)
    first_n: int = Field(0, ge=0)
    retry_after: float = Field(1.0, ge=0)


class MockSettings(_Frozen):
    """The built-in simulated upstream; ``dialect`` is the wire format it speaks."""

    dialect: Literal["openai", "anthropic"] = "openai"
    latency_ms: float = Field(0.0, ge=0)
    latency_jitter_ms: float = Field(0.0, ge=0)
    first_token_ms: float = Field(0.0, ge=0)
    stream_interval_ms: float = Field(0.0, ge=0)
    max_concurrency: int = Field(0, ge=0)
    fault: MockFaultSettings = MockFaultSettings()


class DeploymentSettings(_Frozen):
    provider: Literal["anthropic", "openai", "mock"]
    name: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    model: str | None = Field(None, description="the upstream's model name (default: model's name)")
    weight: float = Field(1.0, gt=0)
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, gt=0)
    timeouts: TimeoutSettings = TimeoutSettings()
    headers: dict[str, str] = Field(default_factory=dict)
    flatten_content: bool = Field(
        False, description="join a user message's text blocks into one string (OpenAI wire)"
    )
    mock: MockSettings | None = None
    breaker: BreakerSettings = BreakerSettings()

    @model_validator(mode="after")
    def _needs_base_url(self) -> DeploymentSettings:
        if self.provider != "mock" and not self.base_url:
            raise ValueError(f"base_url is required for provider '{self.provider}'")
        if self.base_url:
            parts = urlsplit(self.base_url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ValueError("base_url must be an http:// or https:// URL with a host")
        for name, value in self.headers.items():
            if any(c in name + value for c in "\r\n\0") or not name.strip():
                raise ValueError(f"headers: '{name[:40]}' holds a line break or is empty")
        return self


class ModelSettings(_Frozen):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    deployments: list[DeploymentSettings] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)
    default_max_tokens: int = Field(4096, gt=0)
    routing: RoutingSettings = RoutingSettings()
    sessions: SessionPolicySettings = SessionPolicySettings()


class ServerSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    workers: int = Field(1, ge=1)
    # The HTTP client for upstreams: aiohttp, or the lean HTTP/1.1 client (transport/h1.py).
    upstream_client: Literal["aiohttp", "h1"] = "h1"
    # /metrics: open by default; when required, it needs Authorization: Bearer with an admin
    # token or, if metrics_token_env names one, that variable's token.
    metrics_token_required: bool = False
    metrics_token_env: str | None = None

    @model_validator(mode="after")
    def _token_env_needs_requirement(self) -> ServerSettings:
        if self.metrics_token_env and not self.metrics_token_required:
            raise ValueError("metrics_token_env is set but metrics_token_required is false")
        return self


class Settings(_Frozen):
    server: ServerSettings = ServerSettings()
    home: Path = Path("~/.relaygate")
    database_url: str | None = None
    redis_url: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    key_cache_refresh_seconds: float = Field(5.0, gt=0)
    limits: LimitSettings = LimitSettings()
    accounting: AccountingSettings = AccountingSettings()
    cache: CacheSettings = CacheSettings()
    sessions: SessionSettings = SessionSettings()
    alerts: AlertSettings = AlertSettings()
    models: list[ModelSettings] = Field(min_length=1)
    pipelines: list[PipelineSettings] = Field(default_factory=list)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelSettings]) -> list[ModelSettings]:
        seen: set[str] = set()
        for model in models:
            for name in (model.name, *model.aliases):
                if name in seen:
                    raise ValueError(f"model name or alias '{name}' is defined twice")
                seen.add(name)
        return models

    @model_validator(mode="after")
    def _fallbacks_exist(self) -> Settings:
        names = {n for m in self.models for n in (m.name, *m.aliases)}
        for model in self.models:
            for fallback in model.fallbacks:
                if fallback not in names:
                    message = f"model '{model.name}' falls back to unknown model '{fallback}'"
                    raise ValueError(message)
        return self

    @model_validator(mode="after")
    def _cache_models_exist(self) -> Settings:
        names = {m.name for m in self.models}
        for name in self.cache.models:
            if name not in names:
                raise ValueError(f"cache.models names unknown model '{name}' (use its name)")
        if self.cache.backend == "redis" and not self.redis_url:
            raise ValueError("cache.backend is redis but redis_url is not set")
        return self

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'relaygate.db'}"
