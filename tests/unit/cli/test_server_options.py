"""uvicorn runs the app itself: no proxy-headers middleware around it, no Server header."""

from __future__ import annotations

import uvicorn

from relaygate.app import create_app
from relaygate.cli.workers import SERVER_OPTIONS
from relaygate.settings import Settings


def test_uvicorn_calls_the_app_directly_and_names_no_server() -> None:
    app = create_app(
        Settings.model_validate({"models": [{"name": "m", "deployments": [{"provider": "mock"}]}]})
    )
    config = uvicorn.Config(app, **SERVER_OPTIONS)
    config.load()
    assert config.loaded_app is app
    assert not any(name == b"server" for name, _ in config.encoded_headers)
