from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import MOCKS, Gateway, MockServer, fault, start_gateway, start_mock, stop


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """relaygate serve with its embedded defaults (mock-gpt, mock-claude, mock-fast)."""
    home: Path = tmp_path_factory.mktemp("gateway-home")
    gw = start_gateway(home)
    yield gw
    stop(gw.process)


@pytest.fixture(scope="module")
def mocks(request: pytest.FixtureRequest) -> Iterator[dict[str, MockServer]]:
    """Standalone mocks A, B and C for a module's scripted-fault tests, started with the
    module's ``MOCK_ARGS`` (``relaygate mock serve`` options) when it sets them."""
    args: list[str] | None = getattr(request.module, "MOCK_ARGS", None)
    with ThreadPoolExecutor(len(MOCKS)) as pool:
        started = dict(zip(MOCKS, pool.map(lambda _: start_mock(args), MOCKS), strict=True))
    yield started
    for server in started.values():
        stop(server.process)


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    """A client of the module's ``gateway`` that sends its API key in both dialects' headers."""
    headers = {"authorization": f"Bearer {gateway.api_key}", "x-api-key": gateway.api_key}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=10.0) as client:
        yield client


@pytest.fixture
def clean_mocks(mocks: dict[str, MockServer]) -> Iterator[None]:
    """No fault on any mock before and after the test (use it with ``usefixtures``)."""
    for name in MOCKS:
        fault(mocks, name, "none")
    yield
    for name in MOCKS:
        fault(mocks, name, "none")
