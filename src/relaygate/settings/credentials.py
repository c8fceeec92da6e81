"""The upstream credentials the gateway holds: what must never leave it in an error or a log."""

from __future__ import annotations

from collections.abc import Mapping

from relaygate.settings.load import resolve_api_key
from relaygate.settings.model import Settings

_CREDENTIAL_WORDS = ("auth", "key", "token", "secret")


def upstream_credentials(settings: Settings, env: Mapping[str, str] | None = None) -> set[str]:
    """Every deployment's API key (read from its ``api_key_env``) and the values of its extra
    headers whose names suggest a credential (``Authorization: Bearer x`` gives ``x`` too)."""
    found: set[str] = set()
    for model in settings.models:
        for dep in model.deployments:
            key = resolve_api_key(dep.api_key_env, env)
            if key:
                found.add(key)
            for name, value in dep.headers.items():
                if any(word in name.lower() for word in _CREDENTIAL_WORDS):
                    found.add(value)
                    found.add(value.partition(" ")[2].strip())
    found.discard("")
    return found
