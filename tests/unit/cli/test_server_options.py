"""uvicorn runs the app itself: no proxy-headers middleware around it, no Server header."""

from __future__ import annotations

import uvicorn

from relaygate.app import create_app
from relaygate.cli.workers import SERVER_OPTIONS
from relaygate.settings import Settings
from relaygate.web.protocol import HttpProtocol


def loaded_config() -> uvicorn.Config:
    app = create_app(
        Settings.model_validate({"models": [{"name": "m", "deployments": [{"provider": "mock"}]}]})
    )
    config = uvicorn.Config(app, **SERVER_OPTIONS)
    config.load()
    return config


def test_uvicorn_calls_the_app_directly_and_names_no_server() -> None:
    config = loaded_config()
    assert config.loaded_app is config.app
    assert not any(name == b"server" for name, _ in config.encoded_headers)


def test_uvicorn_serves_with_the_protocol_that_writes_a_whole_answer_at_once() -> None:
    assert loaded_config().http_protocol_class is HttpProtocol
