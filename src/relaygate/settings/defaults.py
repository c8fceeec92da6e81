"""The embedded configuration used when no file is given: the built-in mock provider only."""

from __future__ import annotations

from typing import Any

EMBEDDED_DEFAULTS: dict[str, Any] = {
    "models": [
        {
            "name": "mock-gpt",
            "deployments": [{"provider": "mock", "mock": {"dialect": "openai", "latency_ms": 20}}],
        },
        {
            "name": "mock-claude",
            "deployments": [
                {"provider": "mock", "mock": {"dialect": "anthropic", "latency_ms": 20}}
            ],
        },
        {
            "name": "mock-fast",
            "deployments": [{"provider": "mock", "mock": {"dialect": "openai"}}],
        },
    ]
}
