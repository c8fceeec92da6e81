"""Deployment settings reach the upstream target the provider builds requests from."""

from __future__ import annotations

from relaygate.routing.catalog import build_catalog
from relaygate.settings import Settings
from relaygate.transport.http import HttpTransport


def test_flatten_content_reaches_the_upstream_target() -> None:
    deployments = [
        {"provider": "openai", "base_url": "http://a.test/v1", "flatten_content": True},
        {"provider": "openai", "base_url": "http://b.test/v1"},
    ]
    settings = Settings.model_validate({"models": [{"name": "m", "deployments": deployments}]})
    route = build_catalog(settings, HttpTransport()).resolve("m")
    assert [d.target.flatten_content for d in route.deployments] == [True, False]
