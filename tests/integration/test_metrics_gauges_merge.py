"""Every gauge a gateway exports says how it merges over the workers of ``serve --workers N``
(a new one left out would silently be summed)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.cache_support import openai_chat, start_gateway

from relaygate.observability.all_workers import DERIVED, GAUGES


async def test_every_gauge_has_a_merge_over_workers(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path)
    try:
        assert (await gw.openai(openai_chat())).status_code == 200
        assert (await gw.openai(openai_chat())).status_code == 200
        registry = gw.services.metrics.registry
        gauges = {metric.name for metric in registry.collect() if metric.type == "gauge"}
    finally:
        await gw.client.aclose()
        await gw.services.close()
    assert "relaygate_cache_hit_ratio" in gauges  # the cache's collector ran
    assert gauges - GAUGES.keys() - DERIVED == set()
