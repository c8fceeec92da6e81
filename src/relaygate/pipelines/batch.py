"""``relaygate batch run``: a JSONL file through a pipeline with no server and no job store.

Each item gets up to the pipeline's ``max_attempts`` attempts (with the same jittered backoff as
jobs) through the gateway's own request path, and one output line. The output file is the
progress record: ids already in it are skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from relaygate.jobs import Job, retry_delay
from relaygate.pipelines.attempt import Failed, run_attempt
from relaygate.pipelines.compiled import CompiledPipeline
from relaygate.pipelines.gateway import GatewayPath, Spent


@dataclass(frozen=True, slots=True)
class BatchItem:
    id: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadLine:
    number: int
    problem: str


def read_items(lines: Iterable[str]) -> Iterator[BatchItem | BadLine]:
    """Items of a JSONL file: ``{"id", "content", ...}`` or an event ``{"event_id", "data"}``."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield BadLine(number, f"not valid JSON ({exc})")
            continue
        if not isinstance(value, dict):
            yield BadLine(number, "not a JSON object")
            continue
        item_id = value.get("id", value.get("event_id"))
        if isinstance(item_id, int) and not isinstance(item_id, bool):
            item_id = str(item_id)
        if not isinstance(item_id, str) or not item_id:
            yield BadLine(number, "no id (or event_id): a non-empty string or number")
            continue
        data = value.get("data")
        if data is None:
            data = {k: v for k, v in value.items() if k not in ("id", "event_id")}
        if not isinstance(data, dict):
            yield BadLine(number, "data must be a JSON object")
            continue
        yield BatchItem(item_id, data)


def done_ids(output: Path) -> set[str]:
    """Ids already written; a last line cut off mid-write (no newline) is dropped from the file."""
    if not output.exists():
        return set()
    text = output.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        output.write_text(text, encoding="utf-8")
    ids: set[str] = set()
    for line in text.splitlines():
        try:
            ids.add(str(orjson.loads(line)["id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return ids


@dataclass(slots=True)
class Totals:
    done: int = 0
    failed: int = 0
    cost_usd: float = 0.0


async def run_batch(
    pipeline: CompiledPipeline,
    path: GatewayPath,
    items: list[BatchItem],
    out: TextIO,
    *,
    key_name: str,
    concurrency: int,
    on_line: Callable[[Totals], None] = lambda totals: None,
) -> Totals:
    """Run ``items`` with at most ``concurrency`` at once; each result is one flushed line."""
    totals = Totals()
    queue: asyncio.Queue[BatchItem] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def work() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            line = await _run_item(pipeline, path, item, key_name)
            out.write(orjson.dumps(line).decode() + "\n")
            out.flush()
            totals.cost_usd += line["cost_usd"]
            if line["status"] == "succeeded":
                totals.done += 1
            else:
                totals.failed += 1
            on_line(totals)

    await asyncio.gather(*(work() for _ in range(max(1, concurrency))))
    return totals


async def _run_item(
    pipeline: CompiledPipeline, path: GatewayPath, item: BatchItem, key_name: str
) -> dict[str, Any]:
    settings = pipeline.settings
    spent = Spent()
    error = ""
    for attempt in range(1, settings.max_attempts + 1):
        job = _job(settings.name, item, key_name, attempt)
        try:
            async with asyncio.timeout(settings.timeout_seconds):
                end = await run_attempt(pipeline, job, path, spent)
        except TimeoutError:
            end = Failed(f"the attempt timed out after {settings.timeout_seconds:g} s", "timeout")
        if not isinstance(end, Failed):
            return _line(item, "succeeded", attempt, spent, result=end.value)
        error = end.error
        if attempt < settings.max_attempts:
            await asyncio.sleep(retry_delay(attempt, base=settings.retry_base_seconds))
    return _line(item, "failed", settings.max_attempts, spent, error=error)


def _line(
    item: BatchItem, status: str, attempts: int, spent: Spent, *, result: Any = None,
    error: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {"id": item.id, "status": status, "result": result, "error": error,
            "attempts": attempts, "cost_usd": round(spent.cost_usd, 10)}  # fmt: skip


def _job(pipeline: str, item: BatchItem, key_name: str, attempt: int) -> Job:
    """The attempt's view of an item: ``run_attempt`` reads its data, key and numbers."""
    now = datetime.now(UTC)
    return Job(
        id=f"batch_{item.id}"[:80], pipeline=pipeline, event_id=item.id, key_name=key_name,
        status="running", data=item.data, callback_url=None, attempts=attempt, max_attempts=0,
        run_after=now, lease_token=None, lease_expires_at=None, result=None, validity=None,
        error=None, errors=(), cost_usd=0.0, input_tokens=0, output_tokens=0,
        callback_status=None, callback_attempts=0, callback_error=None, created_at=now,
        started_at=now, finished_at=None,
    )  # fmt: skip
