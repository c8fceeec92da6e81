"""A gateway stopped during a PostgreSQL outage keeps its unwritten budget settlements.

The outage is a TCP proxy in the test process (``pg_proxy.py``); the shared server keeps running.
A budgeted key spends while the database is down (shared mode admits it, fail-open), the gateway
stops before the database is back, a new one starts (still down), then the database returns: the
key's budget counters must equal the spend its ledger rows record, exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.accounting_support import openai_call, write_config
from tests.e2e.pg_proxy import PostgresProxy
from tests.e2e.server import start_gateway, stop
from tests.e2e.test_postgres_down_at_start import admin, wait_ready

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxy() -> Iterator[PostgresProxy]:
    p = PostgresProxy()
    yield p
    p.shutdown()


async def _spend(url: str, key_name: str) -> tuple[float, float, int]:
    """(budget counter, ledger cost total, ledger rows) of ``key_name``."""
    conn = await asyncpg.connect(url)
    try:
        counter = await conn.fetchval(
            "SELECT month_spent_usd FROM key_budgets WHERE key_name = $1", key_name
        )
        row = await conn.fetchrow(
            "SELECT coalesce(sum(cost_usd), 0), count(*) FROM usage_ledger WHERE key_name = $1",
            key_name,
        )
    finally:
        await conn.close()
    assert row is not None
    return float(counter or 0.0), float(row[0]), int(row[1])


def test_budget_spend_unwritten_at_stop_is_counted_after_a_restart(
    tmp_path: Path, postgres_url: str, proxy: PostgresProxy
) -> None:
    home = tmp_path / "home"
    config = write_config(home)
    url = proxy.url_for(postgres_url)
    proxy.open()
    first = start_gateway(home, config, database_url=url)
    try:
        made = admin(first, "POST", "/admin/keys", json={"name": "capped", "monthly_budget_usd": 5})
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        calls = [openai_call(first, "mock-fast", "up", stream=False, key=key)]
        proxy.close()
        calls += [
            openai_call(first, "mock-fast", f"down {i}", stream=i % 2 == 0, key=key)
            for i in range(4)
        ]
    finally:
        stop(first.process)
    assert [c.status for c in calls] == [200] * 5, first.log()
    assert list(home.glob("budget-unwritten.*.json")), first.log()

    second = start_gateway(
        home, config, database_url=url, credentials=(first.api_key, first.admin_token)
    )
    try:
        proxy.open()
        wait_ready(second)
        deadline = time.monotonic() + 30
        counter, ledger, rows = asyncio.run(_spend(postgres_url, "capped"))
        while (rows < 5 or counter < ledger - 1e-12) and time.monotonic() < deadline:
            time.sleep(0.2)
            counter, ledger, rows = asyncio.run(_spend(postgres_url, "capped"))
    finally:
        stop(second.process)
    assert rows == 5 and ledger > 0
    assert counter == pytest.approx(ledger), second.log()
    assert not list(home.glob("budget-unwritten.*"))
