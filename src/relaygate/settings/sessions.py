"""Conversation sessions (``x-relaygate-session``): how much history is kept, and for how long.

Each field of ``SessionPolicySettings`` left unset falls back: a key's override, then the model's
(``models[].sessions``), then ``sessions`` itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SessionPolicySettings(_Frozen):
    """An override: ``None`` fields take the next level's value (``max_tokens: 0`` = no cap)."""

    max_turns: int | None = Field(None, ge=1, le=1000)
    max_tokens: int | None = Field(None, ge=0)
    ttl_seconds: float | None = Field(None, gt=0)


class SessionSettings(_Frozen):
    """Defaults: the last 10 turns (a turn is a request's messages and the answer), no token cap,
    kept one hour after the last write. ``max_sessions`` and ``max_memory_bytes`` bound the
    in-memory backend (the least recently written session goes first); Redis, used when
    ``redis_url`` is set, expires by TTL."""

    max_turns: int = Field(10, ge=1, le=1000)
    max_tokens: int = Field(0, ge=0)
    ttl_seconds: float = Field(3600.0, gt=0)
    max_sessions: int = Field(10_000, ge=1)
    max_memory_bytes: int = Field(256 * 1024 * 1024, ge=1)
    keys: dict[str, SessionPolicySettings] = Field(default_factory=dict)
