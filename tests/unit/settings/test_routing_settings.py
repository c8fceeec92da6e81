from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.settings import ConfigError, load_settings

CONFIG = """
models:
  - name: claude-sonnet-4
    fallbacks: [claude-haiku-4]
    routing:
      strategy: least_outstanding
      max_attempts: 5
      attempts_per_deployment: 3
      deadline_seconds: 120
    deployments:
      - provider: mock
        name: sonnet-a
        breaker: {consecutive_failures: 3, cooldown_seconds: 2, min_requests: 5}
      - provider: mock
        name: sonnet-b
  - name: claude-haiku-4
    deployments:
      - provider: mock
"""


def test_routing_and_breaker_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "relaygate.yaml"
    path.write_text(CONFIG)
    settings = load_settings(path, env={})
    sonnet, haiku = settings.models
    assert sonnet.routing.strategy == "least_outstanding"
    assert sonnet.routing.max_attempts == 5 and sonnet.routing.deadline_seconds == 120
    assert sonnet.deployments[0].breaker.consecutive_failures == 3
    assert sonnet.deployments[0].breaker.cooldown_seconds == 2
    assert sonnet.deployments[1].breaker.consecutive_failures == 5  # default
    assert haiku.routing.strategy == "weighted" and haiku.routing.attempts_per_deployment == 3
    assert haiku.deployments[0].timeouts.idle == 60  # default


@pytest.mark.parametrize(
    ("snippet", "where"),
    [
        ("routing: {strategy: fastest}", "models[0].routing.strategy"),
        ("routing: {max_attempts: 0}", "models[0].routing.max_attempts"),
        ("routing: {deadline_seconds: -1}", "models[0].routing.deadline_seconds"),
        ("routing: {backoff_base_seconds: 5, backoff_max_seconds: 1}", "models[0].routing"),
        ("routing: {retries: 3}", "models[0].routing.retries"),
    ],
)
def test_bad_routing_settings_name_the_field(tmp_path: Path, snippet: str, where: str) -> None:
    path = tmp_path / "relaygate.yaml"
    path.write_text(
        f"models:\n  - name: m\n    {snippet}\n    deployments:\n      - provider: mock\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert where in str(info.value)


def test_bad_breaker_settings_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "relaygate.yaml"
    path.write_text(
        "models:\n  - name: m\n    deployments:\n      - provider: mock\n"
        "        breaker: {error_rate: 1.5}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert "models[0].deployments[0].breaker.error_rate" in str(info.value)
