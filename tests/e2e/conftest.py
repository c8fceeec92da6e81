from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Gateway, start_gateway, stop


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """relaygate serve with its embedded defaults (mock-gpt, mock-claude, mock-fast)."""
    home: Path = tmp_path_factory.mktemp("gateway-home")
    gw = start_gateway(home)
    yield gw
    stop(gw.process)
