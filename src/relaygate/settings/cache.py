"""Response-cache and coalescing settings: the ``cache:`` block of the config.

Top-level fields are the defaults of every model; ``models`` (by configured model name) and
``keys`` (by key name) override them, a key's override winning over its model's. Everything is
off by default: an unconfigured gateway does no hashing and no lookups.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TTL_SECONDS = 30 * 24 * 3600.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CachePolicyOverride(_Frozen):
    """Per model or per key: any field left out keeps the value from the level above."""

    enabled: bool | None = None
    ttl_seconds: float | None = Field(None, gt=0, le=MAX_TTL_SECONDS)
    scope: Literal["key", "global"] | None = None
    coalesce: bool | None = None
    nondeterministic: bool | None = None
    deterministic_default: bool | None = None


class CachePolicy(_Frozen):
    """What the cache does for one model and key.

    ``scope: key`` keeps each key's answers to itself; ``global`` shares them between keys.
    Only deterministic requests are cached (``temperature: 0``, or no temperature when
    ``deterministic_default`` says the model's own default is deterministic) unless
    ``nondeterministic`` is set. ``coalesce`` lets identical requests in flight share one
    upstream call (cacheable requests only).
    """

    enabled: bool = False
    ttl_seconds: float = Field(3600.0, gt=0, le=MAX_TTL_SECONDS)
    scope: Literal["key", "global"] = "key"
    coalesce: bool = True
    nondeterministic: bool = False
    deterministic_default: bool = False

    def with_override(self, override: CachePolicyOverride | None) -> CachePolicy:
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class CacheSettings(CachePolicy):
    """``backend``: ``auto`` is Redis when ``redis_url`` is set, else memory. ``max_bytes`` bounds
    the memory backend. ``stale_seconds``: how long past its TTL an entry stays readable for
    ``serve_stale``. ``hit_charge``: what the caller's ledger row costs for a hit or a coalesced
    answer (``free``, or ``full``: the price of the answer's tokens)."""

    backend: Literal["auto", "memory", "redis"] = "auto"
    max_bytes: int = Field(256 * 1024 * 1024, gt=0)
    stale_seconds: float = Field(3600.0, ge=0, le=MAX_TTL_SECONDS)
    hit_charge: Literal["free", "full"] = "free"
    models: dict[str, CachePolicyOverride] = Field(default_factory=dict)
    keys: dict[str, CachePolicyOverride] = Field(default_factory=dict)

    @property
    def used(self) -> bool:
        """Whether any model or key has the cache on (else nothing is built)."""
        overrides = (*self.models.values(), *self.keys.values())
        return self.enabled or any(o.enabled for o in overrides)

    def policy(self, model: str, key: str | None = None) -> CachePolicy:
        base = CachePolicy(**self.model_dump(include=set(CachePolicy.model_fields)))
        policy = base.with_override(self.models.get(model))
        return policy.with_override(self.keys.get(key)) if key is not None else policy
