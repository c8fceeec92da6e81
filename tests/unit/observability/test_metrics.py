"""Process-level gauges read at scrape time."""

from __future__ import annotations

import asyncio

from relaygate.observability.metrics import Metrics


def _gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the scrape")


async def test_asyncio_tasks_gauge_counts_the_loops_tasks() -> None:
    metrics = Metrics()
    before = _gauge(metrics.render().decode(), "relaygate_asyncio_tasks")
    parked = [asyncio.create_task(asyncio.sleep(10)) for _ in range(5)]
    try:
        during = _gauge(metrics.render().decode(), "relaygate_asyncio_tasks")
    finally:
        for task in parked:
            task.cancel()
        await asyncio.gather(*parked, return_exceptions=True)
    assert before >= 1  # this test's own task
    assert during == before + 5


def test_asyncio_tasks_gauge_is_zero_outside_a_loop() -> None:
    assert _gauge(Metrics().render().decode(), "relaygate_asyncio_tasks") == 0
