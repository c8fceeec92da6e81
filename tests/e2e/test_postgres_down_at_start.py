"""Start the gateway while PostgreSQL is unreachable (issue 8, item 7).

The outage is a TCP proxy in the test process (``pg_proxy.py``) that refuses connections while
closed; the shared PostgreSQL server itself keeps running. The gateway must come up in a degraded
mode: liveness 200, readiness saying why, a clear 503 while it has no keys, the last key snapshot
when one exists, and everything back (keys, migrations, spilled ledger rows) once the database is
reachable, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaygate.auth.bootstrap import bootstrap_if_empty
from relaygate.store import open_store
from tests.e2e.accounting_support import ledger_request_ids, openai_call, write_config
from tests.e2e.pg_proxy import PostgresProxy
from tests.e2e.server import Gateway, start_gateway, stop

pytestmark = pytest.mark.postgres
SNAPSHOT_FILE = "key-snapshot.json"


@pytest.fixture
def proxy() -> Iterator[PostgresProxy]:
    p = PostgresProxy()
    yield p
    p.shutdown()


def readyz(gw: Gateway) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{gw.base_url}/readyz")
    return response.status_code, response.json()


def wait_ready(gw: Gateway, timeout: float = 40.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status, body = readyz(gw)
    while body.get("database") != "ok" and time.monotonic() < deadline:
        time.sleep(0.2)
        status, body = readyz(gw)
    assert status == 200 and body["database"] == "ok", (body, gw.log())
    return body


def admin(gw: Gateway, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {gw.admin_token}"}
    return httpx.request(method, f"{gw.base_url}{path}", headers=headers, **kwargs)


def anthropic_call(gw: Gateway, key: str) -> httpx.Response:
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    body = {
        "model": "mock-claude",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return httpx.post(f"{gw.base_url}/v1/messages", json=body, headers=headers)


def metric(gw: Gateway, name: str) -> float:
    for line in httpx.get(f"{gw.base_url}/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported")


async def _bootstrap(url: str, home: Path) -> tuple[str, str]:
    store = await open_store(url)
    try:
        made = await bootstrap_if_empty(store, home)
    finally:
        await store.close()
    assert made is not None
    return made.api_key, made.admin_token


def wait_ledger(url: str, count: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    ids = asyncio.run(ledger_request_ids(url))
    while len(ids) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        ids = asyncio.run(ledger_request_ids(url))
    return ids


def test_no_snapshot_not_ready_then_ready_without_restart(
    tmp_path: Path, postgres_url: str, proxy: PostgresProxy
) -> None:
    api_key, admin_token = asyncio.run(_bootstrap(postgres_url, tmp_path / "bootstrap"))
    home = tmp_path / "home"
    gw = start_gateway(
        home,
        write_config(home),
        database_url=proxy.url_for(postgres_url),
        credentials=(api_key, admin_token),
    )
    try:
        assert httpx.get(f"{gw.base_url}/healthz").status_code == 200
        status, body = readyz(gw)
        assert status == 503
        assert body["ready"] is False
        assert body["database"] == "unreachable"
        assert body["keys"] == "none"
        assert metric(gw, "relaygate_ready") == 0
        assert metric(gw, "relaygate_database_up") == 0

        sent = openai_call(gw, "mock-fast", "hello", stream=False)
        assert sent.status == 503
        response = httpx.post(
            f"{gw.base_url}/v1/chat/completions",
            json={"model": "mock-fast", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {api_key}"},
        )
        assert response.status_code == 503
        error = response.json()["error"]
        assert "database" in error["message"].lower() and error["type"]
        answer = anthropic_call(gw, api_key)
        assert answer.status_code == 503
        assert answer.json()["type"] == "error"
        assert "database" in answer.json()["error"]["message"].lower()

        keys = admin(gw, "GET", "/admin/keys")
        assert keys.status_code == 503
        assert "database" in keys.json()["error"]["message"].lower()
        assert not (home / SNAPSHOT_FILE).exists()

        proxy.open()
        body = wait_ready(gw)
        assert body["ready"] is True and body["keys"] == "database"
        assert openai_call(gw, "mock-fast", "after", stream=False).status == 200
        assert anthropic_call(gw, api_key).status_code == 200
        assert admin(gw, "GET", "/admin/keys").status_code == 200
        assert metric(gw, "relaygate_ready") == 1
        assert metric(gw, "relaygate_database_up") == 1
        assert "reachable again" in gw.log()
        snapshot = home / SNAPSHOT_FILE
        assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
        text = snapshot.read_text()
        assert api_key not in text and admin_token not in text
    finally:
        stop(gw.process)


def wait_snapshot_revoked(path: Path, name: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
            if any(k["name"] == name and k["revoked_at"] for k in data["keys"]):
                return data
        time.sleep(0.1)
    raise AssertionError(f"the snapshot never showed {name} revoked")


def test_snapshot_serves_known_keys_and_ledger_lands_after_outage(
    tmp_path: Path, postgres_url: str, proxy: PostgresProxy
) -> None:
    home = tmp_path / "home"
    config = write_config(home)
    url = proxy.url_for(postgres_url)
    proxy.open()
    first = start_gateway(home, config, database_url=url)
    try:
        budgeted = admin(
            first, "POST", "/admin/keys", json={"name": "budgeted", "monthly_budget_usd": 5.0}
        )
        assert budgeted.status_code == 201, budgeted.text
        doomed = admin(first, "POST", "/admin/keys", json={"name": "doomed"})
        assert doomed.status_code == 201, doomed.text
        assert admin(first, "DELETE", "/admin/keys/doomed").status_code == 200
        snapshot = wait_snapshot_revoked(home / SNAPSHOT_FILE, "doomed")
    finally:
        stop(first.process)
    budgeted_key, doomed_key = budgeted.json()["key"], doomed.json()["key"]
    path = home / SNAPSHOT_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    for secret in (first.api_key, first.admin_token, budgeted_key, doomed_key):
        assert secret not in text
    assert len(snapshot["keys"]) == 3

    proxy.close()
    gw = start_gateway(
        home, config, database_url=url, credentials=(first.api_key, first.admin_token)
    )
    try:
        status, body = readyz(gw)
        assert status == 200, body
        assert body["ready"] is True
        assert body["database"] == "unreachable"
        assert body["keys"].startswith("snapshot (3 keys, saved at ")
        assert metric(gw, "relaygate_ready") == 1
        assert metric(gw, "relaygate_database_up") == 0

        sent = [openai_call(gw, "mock-fast", f"down {i}", stream=i % 2 == 0) for i in range(6)]
        sent.append(openai_call(gw, "mock-fast", "budgeted", stream=False, key=budgeted_key))
        assert [s.status for s in sent] == [200] * 7
        revoked = httpx.post(
            f"{gw.base_url}/v1/chat/completions",
            json={"model": "mock-fast", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {doomed_key}"},
        )
        assert revoked.status_code == 401
        assert "revoked" in revoked.json()["error"]["message"]
        assert asyncio.run(ledger_request_ids(postgres_url)) == []

        proxy.open()
        wait_ready(gw)
        ids = wait_ledger(postgres_url, len(sent))
        assert sorted(ids) == sorted(s.request_id for s in sent)
        assert openai_call(gw, "mock-fast", "after", stream=False).status == 200
    finally:
        stop(gw.process)
