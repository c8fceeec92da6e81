"""Integration fixtures: an in-process gateway with the response cache on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.integration.cache_support import Gateway, start_gateway


@pytest.fixture
async def cache_gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start_gateway(tmp_path)
    yield gw
    await gw.client.aclose()
    await gw.services.close()
