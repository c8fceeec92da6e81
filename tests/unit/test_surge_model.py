"""bench.surge_model: the admission code of several workers over one store, in virtual time."""

from __future__ import annotations

import asyncio
import json

import pytest
from bench.surge_model import VirtualClock, VirtualLoop, main


def test_a_sleep_advances_the_virtual_clock() -> None:
    clock = VirtualClock()
    loop = VirtualLoop(clock)
    try:
        start = clock.now
        loop.run_until_complete(asyncio.sleep(3600))
        assert clock.now - start >= 3600
    finally:
        loop.close()


def test_the_report_counts_every_protected_request_of_the_peak(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--seeds", "1", "--base", "100", "--base-seconds", "0.2", "--peak", "400"]
    assert main([*args, "--peak-seconds", "0.2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["high_priority"] == 8  # 80 requests in the peak, one in ten protected
    assert 0 <= report["high_priority_failed"] <= report["high_priority"]
    assert len(report["unprotected_in_flight_max"]) == 1
