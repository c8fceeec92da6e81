"""Alert settings: defaults from issue 12's use cases, and bad webhooks refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from relaygate.settings import ConfigError, load_settings
from relaygate.settings.alerts import AlertSettings


def test_defaults_match_the_use_cases() -> None:
    rules = AlertSettings().rules
    assert (rules.latency.threshold_ms, rules.latency.window_seconds) == (100, 300)
    assert (rules.errors.threshold, rules.errors.window_seconds) == (0.01, 300)
    assert rules.budget.threshold == 0.8
    assert rules.breaker.open_seconds == 60
    assert rules.degradation.level == "degraded"
    assert rules.ledger_spill.enabled


@pytest.mark.parametrize(
    "hook",
    [
        {"url": "ftp://x", "format": "json"},
        {"url": "https://x", "format": "teams"},
        {"url": "https://x", "attempts": 0},
        {"url": "https://x", "colour": "red"},
    ],
)
def test_bad_webhooks_are_refused(hook: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AlertSettings.model_validate({"webhooks": [hook]})


def test_a_bad_url_is_refused_without_quoting_it(tmp_path: Path) -> None:
    config = tmp_path / "relaygate.yaml"
    config.write_text(
        "models: [{name: m, deployments: [{provider: mock}]}]\n"
        "alerts: {webhooks: [{url: 'ftp://example.com/hook?access_token=s3cret'}]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    assert "alerts.webhooks[0].url: expected an http:// or https:// URL" in str(caught.value)
    assert "s3cret" not in str(caught.value)
