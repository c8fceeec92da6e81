"""``DELETE /admin/cache`` (all, per key, per model) and ``serve_stale`` under the degraded level
(issue 11)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.cache_support import (
    CONFIG,
    Gateway,
    anthropic_chat,
    openai_chat,
    start_gateway,
)

from relaygate.admission import Level
from relaygate.auth import new_api_key
from relaygate.store.records import KeySpec

STALE_CONFIG = CONFIG.replace(
    "limits:\n",
    """limits:
  degrade:
    enabled: true
    min_hold_seconds: 600
    degraded_actions: {serve_stale: true, shed_below_priority: 1000}
""",
)


async def test_clear_all_per_key_and_per_model(cache_gateway: Gateway) -> None:
    gw = cache_gateway
    made = new_api_key()
    await gw.services.store.create_key(KeySpec("other", made.key_hash, made.key_prefix))
    await gw.services.keys.refresh()
    admin = {"authorization": f"Bearer {gw.admin_token}"}

    async def fill() -> None:
        await gw.openai(openai_chat("a"))
        await gw.openai(openai_chat("a"), made.raw_key)
        await gw.anthropic(anthropic_chat("a"))

    await fill()
    cleared = await gw.client.delete("/admin/cache", params={"key": "other"}, headers=admin)
    assert cleared.status_code == 200 and cleared.json()["removed"] == 1
    assert (await gw.openai(openai_chat("a"), made.raw_key)).headers["x-relaygate-cache"] == "miss"
    assert (await gw.openai(openai_chat("a"))).headers["x-relaygate-cache"] == "hit"
    by_model = await gw.client.delete("/admin/cache", params={"model": "gpt-alias"}, headers=admin)
    assert by_model.json()["removed"] == 2 and by_model.json()["model"] == "gpt"
    assert (await gw.anthropic(anthropic_chat("a"))).headers["x-relaygate-cache"] == "hit"
    everything = await gw.client.delete("/admin/cache", headers=admin)
    assert everything.json()["removed"] == 1
    assert (await gw.anthropic(anthropic_chat("a"))).headers["x-relaygate-cache"] == "miss"


async def test_clear_refuses_bad_input_and_wrong_tokens(cache_gateway: Gateway) -> None:
    gw = cache_gateway
    admin = {"authorization": f"Bearer {gw.admin_token}"}
    unknown = await gw.client.delete("/admin/cache", params={"model": "nope"}, headers=admin)
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "model"
    odd = await gw.client.delete("/admin/cache", params={"scope": "x"}, headers=admin)
    assert odd.status_code == 400
    user = await gw.client.delete("/admin/cache", headers=gw.openai_headers())
    assert user.status_code == 401


async def test_clear_says_when_the_cache_is_off(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path, CONFIG.replace("cache:\n  enabled: true\n", ""))
    try:
        assert gw.services.cache is None
        answer = await gw.client.delete(
            "/admin/cache", headers={"authorization": f"Bearer {gw.admin_token}"}
        )
        assert answer.status_code == 404 and "off" in answer.json()["error"]["message"]
        plain = await gw.openai(openai_chat("b"))
        assert plain.headers["x-relaygate-cache"] == "skip"
        bad = await gw.client.post(
            "/v1/chat/completions",
            json=openai_chat("b"),
            headers=gw.openai_headers(**{"x-relaygate-cache": "whatever"}),
        )
        assert bad.status_code == 200  # the cache is off: its headers are not looked at
    finally:
        await gw.client.aclose()
        await gw.services.close()


async def test_degraded_model_serves_an_expired_entry_marked_stale(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path, STALE_CONFIG)
    try:
        short = gw.openai_headers(**{"x-relaygate-cache-ttl": "0.001"})
        first = await gw.client.post("/v1/chat/completions", json=openai_chat("c"), headers=short)
        assert first.headers["x-relaygate-cache"] == "miss"
        await asyncio.sleep(0.01)  # past the entry's 1 ms TTL
        gw.services.admission.degrade.get("gpt").level = Level.DEGRADED
        stale = await gw.openai(openai_chat("c"))
        assert stale.status_code == 200
        assert stale.headers["x-relaygate-cache"] == "stale"
        assert stale.json()["choices"] == first.json()["choices"]
        assert gw.upstream_calls("gpt") == 1
        [row] = await gw.ledger_rows(stale.headers["x-request-id"])
        assert row.cache_hit and row.cost_usd == 0
        # Without an entry the degraded level does what it says: this key is shed.
        refused = await gw.openai(openai_chat("never asked"))
        assert refused.status_code == 429
    finally:
        await gw.client.aclose()
        await gw.services.close()
