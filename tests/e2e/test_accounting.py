"""Accounting through the real server: ledger rows, budgets, the admin API, shutdown drain."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.accounting_support import (
    INPUT_PRICE,
    OUTPUT_PRICE,
    Sent,
    anthropic_stream,
    assert_retryable_held_refusal,
    held_refusals_seen,
    openai_call,
    write_config,
)
from tests.e2e.server import Gateway, start_gateway, stop
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("accounting-home")
    gw = start_gateway(home, write_config(home))
    yield gw
    stop(gw.process)


def ledger_rows(home: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(home / "relaygate.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM usage_ledger").fetchall()
    return {row["request_id"]: dict(row) for row in rows}


def wait_rows(home: Path, count: int, timeout: float = 15.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows = ledger_rows(home)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = ledger_rows(home)
    return rows


def key_rows(home: Path, key_name: str) -> int:
    return sum(1 for row in ledger_rows(home).values() if row["key_name"] == key_name)


def wait_key_known(gw: Gateway, key: str) -> None:
    """Until the gateway's key cache has loaded ``key`` (the model listing stops saying 401)."""
    url = f"{gw.base_url}/v1/models"
    headers = {"authorization": f"Bearer {key}"}
    wait_until(lambda: httpx.get(url, headers=headers).status_code == 200, what="key loaded")


def admin(gw: Gateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {gw.admin_token}"}
    return httpx.request(method, f"{gw.base_url}{path}", json=body, headers=headers)


def test_every_request_becomes_one_ledger_row_with_its_tokens_and_cost(gateway: Gateway) -> None:
    before = len(ledger_rows(gateway.home))
    calls = [
        *(
            lambda m=m: openai_call(gateway, m, "hello ledger", stream=False)
            for m in ["mock-gpt", "mock-claude"] * 3
        ),
        *(
            lambda m=m: openai_call(gateway, m, "stream mock:words 40", stream=True)
            for m in ["mock-gpt", "mock-claude"] * 3
        ),
        *(
            lambda: anthropic_stream(gateway, "mock-claude", "stream mock:words 30")
            for _ in range(3)
        ),
        *(
            lambda m=m: openai_call(
                gateway, m, "quiet mock:words 25", stream=True, include_usage=False
            )
            for m in ["mock-gpt", "mock-claude"]
        ),
        *(
            lambda m=m: openai_call(gateway, m, "cut mock:words 60 mock:fault drop", stream=True)
            for m in ["mock-gpt", "mock-claude"]
        ),
        *(
            lambda: anthropic_stream(gateway, "mock-claude", "cut mock:words 60 mock:fault drop")
            for _ in range(2)
        ),
    ]
    with ThreadPoolExecutor(8) as pool:
        sent = list(pool.map(lambda call: call(), calls))
    rows = wait_rows(gateway.home, before + len(sent))
    assert len(rows) == before + len(sent)
    for s in sent:
        row = rows[s.request_id]
        assert row["key_name"] == "default" and row["status"] == s.status == 200
        assert row["latency_ms"] > 0 and row["upstream_ms"] > 0 and row["attempts"] == 1
        expected_cost = (
            row["input_tokens"] * INPUT_PRICE + row["output_tokens"] * OUTPUT_PRICE
        ) / 1e6
        assert row["cost_usd"] == pytest.approx(expected_cost)
        assert row["cost_usd"] > 0
        if s.partial:
            assert row["outcome"] == "partial", row
            assert row["output_tokens"] > 0 and row["input_tokens"] > 0, row
            continue
        assert row["outcome"] == "ok", row
        if s.usage is None:  # a stream that did not ask for usage is still billed in full
            assert row["input_tokens"] > 0 and row["output_tokens"] >= 25, row
        else:
            assert (row["input_tokens"], row["output_tokens"]) == s.usage, row
        if row["stream"]:
            assert row["ttft_ms"] is not None and row["ttft_ms"] > 0
    assert sum(s.partial for s in sent) == 4


def test_errors_are_ledger_rows_too(gateway: Gateway) -> None:
    sent = openai_call(gateway, "no-such-model", "hi", stream=False)
    assert sent.status == 404
    deadline = time.monotonic() + 10
    row = ledger_rows(gateway.home).get(sent.request_id)
    while row is None and time.monotonic() < deadline:
        time.sleep(0.1)
        row = ledger_rows(gateway.home).get(sent.request_id)
    assert row is not None and row["status"] == 404 and row["outcome"] == "error"
    assert row["cost_usd"] == 0 and row["error_kind"] == "not_found"


def test_count_tokens_requests_are_free_ledger_rows(gateway: Gateway) -> None:
    rid = f"ct-{time.monotonic_ns()}"
    response = httpx.post(
        f"{gateway.base_url}/v1/messages/count_tokens?beta=true",
        json={"model": "mock-claude", "messages": [{"role": "user", "content": "count me"}]},
        headers={"x-api-key": gateway.api_key, "x-request-id": rid},
    )
    assert response.status_code == 200 and response.json()["input_tokens"] > 0
    deadline = time.monotonic() + 10
    row = ledger_rows(gateway.home).get(rid)
    while row is None and time.monotonic() < deadline:
        time.sleep(0.1)
        row = ledger_rows(gateway.home).get(rid)
    assert row is not None and row["route"] == "anthropic.count_tokens"
    assert row["status"] == 200 and row["cost_usd"] == 0 and row["output_tokens"] == 0


def test_admin_requires_the_admin_token(gateway: Gateway) -> None:
    url = f"{gateway.base_url}/admin/keys"
    assert httpx.get(url).status_code == 401
    api_key_auth = {"authorization": f"Bearer {gateway.api_key}"}
    assert httpx.get(url, headers=api_key_auth).status_code == 401
    assert httpx.get(url, headers={"x-api-key": gateway.api_key}).status_code == 401
    assert admin(gateway, "GET", "/admin/keys").status_code == 200


def test_concurrent_requests_cannot_overspend_beyond_one_reservation(gateway: Gateway) -> None:
    cap = 0.003
    created = admin(gateway, "POST", "/admin/keys", {"name": "capped", "monthly_budget_usd": cap})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    wait_key_known(gateway, key)

    def call(_: int) -> Sent:
        return openai_call(
            gateway, "mock-gpt", "spend mock:words 20", stream=False, key=key, max_tokens=100
        )

    with ThreadPoolExecutor(16) as pool:
        sent = list(pool.map(call, range(120)))
    statuses = [s.status for s in sent]
    assert statuses.count(200) > 0 and statuses.count(429) > 0
    assert set(statuses) == {200, 429}
    wait_until(lambda: key_rows(gateway.home, "capped") >= len(sent), what="every ledger row")
    rows = ledger_rows(gateway.home)
    spent = sum(r["cost_usd"] for r in rows.values() if r["key_name"] == "capped")
    # One reservation: the prompt (~20 tokens at $1.25/M) plus max_tokens (100) at $4/M.
    one_reservation = (100 * 1.25 + 100 * 4.0) / 1e6
    assert spent <= cap + one_reservation, (spent, cap)
    assert spent >= cap * 0.5, (spent, statuses.count(200))  # the budget was really used
    assert sum(1 for r in rows.values() if r["key_name"] == "capped") == len(sent)


def test_an_exhausted_budget_is_a_429_in_each_dialect(gateway: Gateway) -> None:
    created = admin(gateway, "POST", "/admin/keys", {"name": "broke", "balance_usd": 0})
    key = created.json()["key"]
    wait_key_known(gateway, key)
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    openai_reply = httpx.post(
        f"{gateway.base_url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
    )
    assert openai_reply.status_code == 429
    error = openai_reply.json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == "insufficient_quota"
    assert "Budget exhausted for key 'broke'" in error["message"]
    assert "prepaid balance $0.0000 left" in error["message"]
    assert openai_reply.headers["x-should-retry"] == "false"

    anthropic_reply = httpx.post(
        f"{gateway.base_url}/v1/messages",
        json={**body, "max_tokens": 50},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert anthropic_reply.status_code == 429
    assert anthropic_reply.json()["type"] == "error"
    assert anthropic_reply.json()["error"]["type"] == "rate_limit_error"
    assert "Budget exhausted" in anthropic_reply.json()["error"]["message"]

    topped = admin(gateway, "POST", "/admin/keys/broke/top-up", {"amount": 1})
    assert topped.status_code == 201

    def retried() -> httpx.Response | None:  # until the key cache has the new balance
        reply = httpx.post(
            f"{gateway.base_url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
        )
        return reply if reply.status_code != 429 else None

    retry = wait_until(retried, what="the top-up reached the key cache")
    assert retry.status_code == 200, retry.text


def test_the_queue_is_drained_at_shutdown(tmp_path: Path) -> None:
    home = tmp_path / "drain"
    config = write_config(home, ledger={"flush_interval_seconds": 60, "batch_size": 10000})
    gw = start_gateway(home, config)
    try:
        sent = [openai_call(gw, "mock-fast", f"row {i}", stream=False) for i in range(40)]
        assert all(s.status == 200 for s in sent)
        assert len(ledger_rows(home)) == 0  # nothing written yet: the flush interval is 60 s
    finally:
        # uvicorn shuts down gracefully, then re-raises SIGTERM: -15 is a clean exit here.
        assert stop(gw.process) in (0, -15)
    rows = ledger_rows(home)
    assert {s.request_id for s in sent} == set(rows)


def test_ledger_counters_are_exported_to_prometheus(gateway: Gateway) -> None:
    sent = openai_call(gateway, "mock-fast", "count me in", stream=False)
    assert sent.status == 200
    wait_rows(gateway.home, 1)
    deadline = time.monotonic() + 10
    written = 0.0
    while written < 1 and time.monotonic() < deadline:
        text = httpx.get(f"{gateway.base_url}/metrics").text
        prefix = "relaygate_ledger_written_rows_total"
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        written = float(lines[0].split()[-1]) if lines else 0.0
        time.sleep(0.1)
    assert written >= 1
    assert "relaygate_ledger_queued_rows" in text
    assert "relaygate_ledger_healthy 1.0" in text


def test_a_refusal_caused_by_holds_in_flight_is_retryable(gateway: Gateway) -> None:
    # One request holds ~$0.004 (1000 tokens at $4/M) and costs ~$0.00003: two fit at once.
    created = admin(gateway, "POST", "/admin/keys", {"name": "tiny", "monthly_budget_usd": 0.009})
    key = created.json()["key"]
    time.sleep(0.5)
    refused = held_refusals_seen(gateway, key)
    assert refused, "no request was refused while others held the budget"
    for reply in refused:
        assert_retryable_held_refusal(reply)
    time.sleep(0.3)
    after = openai_call(gateway, "mock-gpt", "after", stream=False, key=key, max_tokens=1000)
    assert after.status == 200
