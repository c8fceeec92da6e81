"""``server.upstream_client`` (or ``RELAYGATE_UPSTREAM_CLIENT``) picks the upstream HTTP client."""

from __future__ import annotations

import pytest

from relaygate.services import upstream_transport
from relaygate.settings.load import ConfigError, load_settings
from relaygate.transport.h1 import H1Transport
from relaygate.transport.http import HttpTransport


def test_the_lean_client_is_the_default() -> None:
    assert isinstance(upstream_transport(load_settings(env={})), H1Transport)


def test_the_environment_switches_to_aiohttp() -> None:
    settings = load_settings(env={"RELAYGATE_UPSTREAM_CLIENT": "aiohttp"})
    assert settings.server.upstream_client == "aiohttp"
    assert isinstance(upstream_transport(settings), HttpTransport)


def test_an_unknown_client_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="upstream_client"):
        load_settings(env={"RELAYGATE_UPSTREAM_CLIENT": "httpx"})
