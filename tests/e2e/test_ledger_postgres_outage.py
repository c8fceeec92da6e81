"""Stop PostgreSQL in the middle of a run: the ledger ends with exactly one row per request.

This stops and restarts the machine's real PostgreSQL server, so it runs only when allowed:
in CI (``CI=true``) or with ``RELAYGATE_TEST_PG_RESTART=1``. The server is down for a few seconds
and is always started again, even when the test fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.accounting_support import ledger_request_ids, openai_call, write_config
from tests.e2e.server import Gateway, start_gateway, stop

ALLOWED = os.environ.get("CI") == "true" or os.environ.get("RELAYGATE_TEST_PG_RESTART") == "1"
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.pg_restart,
    pytest.mark.skipif(
        not ALLOWED, reason="stops the local PostgreSQL: set RELAYGATE_TEST_PG_RESTART=1"
    ),
]
PER_PHASE = 30


def cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        pytest.fail("pg_ctlcluster and /etc/postgresql/<version> are needed to stop PostgreSQL")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def pg_ctl(action: str) -> None:
    extra = ["-m", "fast"] if action == "stop" else []
    subprocess.run([*cluster(), action, *extra], check=True, capture_output=True, timeout=60)


def wait_postgres(url: str, up: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            asyncio.run(_ping(url))
            if up:
                return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if not up:
                return
        time.sleep(0.2)
    raise AssertionError(f"PostgreSQL did not come {'up' if up else 'down'} in {timeout} s")


async def _ping(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=2)
    await conn.close()


@pytest.fixture
def pg_gateway(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Gateway, str]]:
    home = tmp_path / "home"
    gw = start_gateway(home, write_config(home), database_url=postgres_url)
    yield gw, postgres_url
    stop(gw.process)


def test_postgres_down_mid_run_loses_and_duplicates_nothing(
    pg_gateway: tuple[Gateway, str],
) -> None:
    gw, url = pg_gateway
    sent: list[str] = []

    def phase(label: str) -> None:
        for i in range(PER_PHASE):
            stream = i % 3 == 0
            result = openai_call(gw, "mock-fast", f"{label} {i}", stream=stream)
            assert result.status == 200, (label, i)
            sent.append(result.request_id)

    phase("before")
    try:
        pg_ctl("stop")
        wait_postgres(url, up=False)
        phase("during")
    finally:
        pg_ctl("start")
        wait_postgres(url, up=True)
    phase("after")

    deadline = time.monotonic() + 30
    ids = asyncio.run(ledger_request_ids(url))
    while len(ids) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.2)
        ids = asyncio.run(ledger_request_ids(url))
    assert len(ids) == len(sent) == 3 * PER_PHASE
    assert sorted(ids) == sorted(sent)  # every request once: no loss, no duplicate

    ledger = httpx.get(
        f"{gw.base_url}/admin/ledger", headers={"authorization": f"Bearer {gw.admin_token}"}
    ).json()
    assert ledger["spilled"] > 0 and ledger["replayed"] == ledger["spilled"]
    assert ledger["healthy"] is True
    assert not list((gw.home).glob("ledger-spill.jsonl.*"))
