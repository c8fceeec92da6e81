"""Accounting on PostgreSQL through real servers: ledger rows, and one budget shared by two
gateway processes (each reservation is one atomic UPDATE, so together they cannot overspend)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.accounting_support import (
    INPUT_PRICE,
    OUTPUT_PRICE,
    anthropic_stream,
    assert_retryable_held_refusal,
    held_refusals_seen,
    openai_call,
    write_config,
)
from tests.e2e.server import Gateway, start_gateway, stop
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres


async def _rows(url: str) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT * FROM usage_ledger")
    finally:
        await conn.close()
    return {row["request_id"]: dict(row) for row in rows}


def wait_rows(url: str, count: int, timeout: float = 15.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows = asyncio.run(_rows(url))
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = asyncio.run(_rows(url))
    return rows


@pytest.fixture
def gateways(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Gateway, Gateway, str]]:
    first_home, second_home = tmp_path / "one", tmp_path / "two"
    first = start_gateway(first_home, write_config(first_home), database_url=postgres_url)
    try:
        second = start_gateway(
            second_home,
            write_config(second_home),
            database_url=postgres_url,
            credentials=(first.api_key, first.admin_token),
        )
    except BaseException:
        stop(first.process)
        raise
    yield first, second, postgres_url
    stop(second.process)
    stop(first.process)


def test_ledger_rows_on_postgres(gateways: tuple[Gateway, Gateway, str]) -> None:
    first, second, url = gateways
    calls = [
        *(
            lambda gw=gw: openai_call(gw, "mock-claude", "hi", stream=False)
            for gw in (first, second)
        ),
        *(
            lambda gw=gw: openai_call(gw, "mock-gpt", "mock:words 30", stream=True)
            for gw in (first, second)
        ),
        *(
            lambda gw=gw: anthropic_stream(gw, "mock-claude", "mock:words 30")
            for gw in (first, second)
        ),
        lambda: openai_call(first, "mock-gpt", "mock:words 60 mock:fault drop", stream=True),
    ]
    with ThreadPoolExecutor(4) as pool:
        sent = list(pool.map(lambda call: call(), calls))
    rows = wait_rows(url, len(sent))
    assert set(rows) == {s.request_id for s in sent}
    for s in sent:
        row = rows[s.request_id]
        expected = (row["input_tokens"] * INPUT_PRICE + row["output_tokens"] * OUTPUT_PRICE) / 1e6
        assert row["cost_usd"] == pytest.approx(expected) and row["cost_usd"] > 0
        if s.partial:
            assert row["outcome"] == "partial" and row["output_tokens"] > 0
        else:
            assert (row["input_tokens"], row["output_tokens"]) == s.usage


def test_two_gateways_share_one_budget(gateways: tuple[Gateway, Gateway, str]) -> None:
    first, second, url = gateways
    cap = 0.003
    created = httpx.post(
        f"{first.base_url}/admin/keys",
        json={"name": "shared-cap", "monthly_budget_usd": cap},
        headers={"authorization": f"Bearer {first.admin_token}"},
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    auth = {"authorization": f"Bearer {key}"}
    for models in (f"{first.base_url}/v1/models", f"{second.base_url}/v1/models"):
        # Until both gateways' key caches have loaded the key.
        wait_until(lambda u=models: httpx.get(u, headers=auth).status_code == 200, what="key")

    def call(i: int) -> int:
        gw = first if i % 2 else second
        sent = openai_call(
            gw, "mock-gpt", "spend mock:words 20", stream=False, key=key, max_tokens=100
        )
        return sent.status

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(160)))
    assert set(statuses) == {200, 429}
    rows = wait_rows(url, 0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = asyncio.run(_rows(url))
        if sum(1 for r in rows.values() if r["key_name"] == "shared-cap") == len(statuses):
            break
        time.sleep(0.1)
    spent = sum(r["cost_usd"] for r in rows.values() if r["key_name"] == "shared-cap")
    one_reservation = (100 * 1.25 + 100 * 4.0) / 1e6
    assert cap * 0.5 <= spent <= cap + one_reservation, (spent, statuses.count(200))


def test_back_to_back_requests_are_not_refused_by_settled_holds(
    gateways: tuple[Gateway, Gateway, str],
) -> None:
    # Each request holds ~$0.0004 and costs ~$0.0001: 23 in a row spend about $0.002 of $0.003,
    # but 8 unwritten holds (written every 0.2 s) would fill the cap.
    first, _, _ = gateways
    key = _create_key(first, "tiny", 0.003)
    statuses = [
        openai_call(
            first, "mock-gpt", "spend mock:words 20", stream=False, key=key, max_tokens=100
        ).status
        for _ in range(23)
    ]
    assert statuses == [200] * 23


def test_a_shared_refusal_caused_by_holds_in_flight_is_retryable(
    gateways: tuple[Gateway, Gateway, str],
) -> None:
    first, _, _ = gateways
    key = _create_key(first, "held", 0.009)
    refused = held_refusals_seen(first, key)
    assert refused, "no request was refused while others held the budget"
    for reply in refused:
        assert_retryable_held_refusal(reply)


def _create_key(gw: Gateway, name: str, cap: float) -> str:
    created = httpx.post(
        f"{gw.base_url}/admin/keys",
        json={"name": name, "monthly_budget_usd": cap},
        headers={"authorization": f"Bearer {gw.admin_token}"},
    )
    assert created.status_code == 201, created.text
    time.sleep(0.6)  # key caches refresh every 0.1 s
    key: str = created.json()["key"]
    return key
