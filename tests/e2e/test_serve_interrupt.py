"""Ctrl-C on ``relaygate serve`` (``make serve``): a graceful stop, with no traceback."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Gateway, start_gateway, stop

INTERRUPTED = 130  # the shell's convention for a process ended by SIGINT


def test_ctrl_c_stops_one_process_quietly(tmp_path: Path) -> None:
    interrupt_after_one_request(start_gateway(tmp_path / "home"))


@pytest.mark.redis
def test_ctrl_c_stops_the_workers_quietly(tmp_path: Path, redis_url: str) -> None:
    env = {"RELAYGATE_WORKERS": "2", "RELAYGATE_REDIS_URL": redis_url}
    interrupt_after_one_request(start_gateway(tmp_path / "home", env=env))


def interrupt_after_one_request(gw: Gateway) -> None:
    answer = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        json={"model": "mock-fast", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {gw.api_key}"},
        timeout=30,
    )
    assert answer.status_code == 200
    gw.process.send_signal(signal.SIGINT)
    try:
        code = gw.process.wait(30)
    finally:
        stop(gw.process)
    log = gw.log()
    assert "Traceback" not in log, log
    assert code in (0, INTERRUPTED), log
