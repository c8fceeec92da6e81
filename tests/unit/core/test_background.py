"""BackgroundTask: start once, cancel or join once, each safe to repeat."""

from __future__ import annotations

import asyncio

import pytest

from relaygate.core.background import BackgroundTask


async def test_start_runs_the_work_once_and_cancel_stops_it() -> None:
    started = 0
    cancelled = asyncio.Event()

    async def forever() -> None:
        nonlocal started
        started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = BackgroundTask("probe", forever)
    assert not task.running
    task.start()
    task.start()
    await asyncio.sleep(0)  # one loop turn: let the task begin
    assert task.running
    await task.cancel()
    await task.cancel()
    assert started == 1
    assert cancelled.is_set()
    assert not task.running


async def test_join_waits_for_the_last_round_and_propagates_errors() -> None:
    stop = asyncio.Event()
    rounds: list[str] = []

    async def until_told() -> None:
        await stop.wait()
        rounds.append("last")

    task = BackgroundTask("probe", until_told)
    task.start()
    stop.set()
    await task.join()
    assert rounds == ["last"]
    await task.join()

    async def broken() -> None:
        raise RuntimeError("boom")

    failing = BackgroundTask("probe", broken)
    failing.start()
    with pytest.raises(RuntimeError, match="boom"):
        await failing.join()


async def test_stop_before_start_is_a_no_op() -> None:
    async def never() -> None:
        raise AssertionError("not started")

    task = BackgroundTask("probe", never)
    await task.cancel()
    await task.join()
    assert not task.running
