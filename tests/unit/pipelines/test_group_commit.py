"""GroupCommit: items asked for together share one write, each caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from relaygate.pipelines.group_commit import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [item * 10 for item in items]


async def held_write(recorder: Recorder, commits: GroupCommit[int, int]) -> asyncio.Task[int]:
    """Item 1's write, started and held open until ``recorder.gate`` is set."""
    recorder.gate.clear()
    task = asyncio.create_task(commits.submit(1))
    while not recorder.batches:
        await asyncio.sleep(0)
    return task


async def test_a_lone_item_is_written_at_once() -> None:
    recorder = Recorder()
    commits = GroupCommit(recorder.write)
    assert await commits.submit(4) == 40
    assert recorder.batches == [[4]]


async def test_items_asked_for_during_a_write_share_the_next_one() -> None:
    recorder = Recorder()
    commits = GroupCommit(recorder.write)
    first = await held_write(recorder, commits)
    later = [asyncio.create_task(commits.submit(i)) for i in range(2, 6)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == 10
    assert [await task for task in later] == [20, 30, 40, 50]
    assert recorder.batches == [[1], [2, 3, 4, 5]]


async def test_batches_are_capped() -> None:
    recorder = Recorder()
    commits = GroupCommit(recorder.write, max_batch=2)
    answers = await asyncio.gather(*(commits.submit(i) for i in range(5)))
    assert answers == [0, 10, 20, 30, 40]
    assert [len(batch) for batch in recorder.batches] == [2, 2, 1]


async def test_a_failed_write_fails_every_caller_of_its_batch_only() -> None:
    calls = 0

    async def write(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database down")
        return list(items)

    commits = GroupCommit(write)
    results = await asyncio.gather(commits.submit(1), commits.submit(2), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    assert await commits.submit(3) == 3


async def test_a_caller_that_gives_up_leaves_its_item_to_the_write() -> None:
    recorder = Recorder()
    commits = GroupCommit(recorder.write)
    task = await held_write(recorder, commits)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    recorder.gate.set()
    await commits.close()
    assert recorder.batches == [[1]]
