"""One real gateway per fuzz module, in front of the in-process mock, holding secrets to guard.

Every deployment is given an upstream API key (through ``api_key_env``) and a secret header; the
admin token, the caller's key and a second API key made through the admin API complete the list
of strings that must never appear in any response.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.server import start_gateway, stop
from tests.fuzz.hostile import MAX_BODY_BYTES
from tests.fuzz.oracle import FuzzTarget

# Breakers off: a fuzzed fault must not take the model down for the valid requests that follow.
_NO_BREAKER = {"enabled": False}
_ONE_ATTEMPT = {"attempts_per_deployment": 1, "max_attempts": 1}


def _deployment(wire: str, key_env: str, header_secret: str) -> dict[str, Any]:
    return {
        "provider": "mock",
        "api_key_env": key_env,
        "headers": {"x-upstream-secret": header_secret},
        "breaker": _NO_BREAKER,
        "mock": {"dialect": wire},
    }


def fuzz_config(upstream_secrets: dict[str, str]) -> dict[str, Any]:
    """Two mock models (one per wire) and two fault models that never retry."""
    header = upstream_secrets["FUZZ_HEADER_SECRET"]
    openai_dep = _deployment("openai", "FUZZ_OPENAI_KEY", header)
    anthropic_dep = _deployment("anthropic", "FUZZ_ANTHROPIC_KEY", header)
    return {
        "log_level": "warning",
        "server": {"max_body_bytes": MAX_BODY_BYTES},
        "models": [
            {"name": "fz-gpt", "aliases": ["fz-gpt-alias"], "deployments": [openai_dep]},
            {"name": "fz-claude", "deployments": [anthropic_dep]},
            {"name": "fz-fault-gpt", "deployments": [openai_dep], "routing": _ONE_ATTEMPT},
            {"name": "fz-fault-claude", "deployments": [anthropic_dep], "routing": _ONE_ATTEMPT},
        ],
    }


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    home: Path = tmp_path_factory.mktemp("fuzz-gateway")
    upstream_secrets = {
        "FUZZ_OPENAI_KEY": "sk-fuzzopenai-" + secrets.token_urlsafe(24),
        "FUZZ_ANTHROPIC_KEY": "sk-ant-fuzz-" + secrets.token_urlsafe(24),
        "FUZZ_HEADER_SECRET": "hdr-fuzz-" + secrets.token_urlsafe(24),
    }
    config = home / "relaygate.yaml"
    config.write_text(yaml.safe_dump(fuzz_config(upstream_secrets)))
    gateway = start_gateway(home, config, env=upstream_secrets)
    try:
        with httpx.Client(base_url=gateway.base_url, timeout=20.0) as client:
            admin = {"authorization": f"Bearer {gateway.admin_token}"}
            # Priority 10: the overload shedder never refuses it at the default steps, so a
            # stall of this shared machine cannot turn a valid request into a busy 429.
            keys = [
                client.post("/admin/keys", headers=admin, json=payload)
                for payload in ({"name": "fuzz-caller", "priority": 10}, {"name": "fuzz-other"})
            ]
            assert all(k.status_code == 201 for k in keys), [k.text for k in keys]
            caller, other = (k.json()["key"] for k in keys)
            guarded = [caller, other, gateway.api_key, gateway.admin_token]
            yield FuzzTarget(client, caller, (*guarded, *upstream_secrets.values()))
    finally:
        stop(gateway.process)
