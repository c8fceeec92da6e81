"""The exactly-once check of issue 10: events with duplicates while workers are killed.

On PostgreSQL: a `relaygate serve` (intake and in-process workers) and two `relaygate worker`
processes share a fresh schema. 16 senders POST ``--events`` events of which a fifth repeat an
earlier event id (so 10,000 events are 8,000 distinct ones); while jobs run, a worker process is
killed with SIGKILL ``--kills`` times (alternating between the two, each restarted at once). The
mock model answers after 100 ms, so the three processes (32 jobs each) run fewer jobs a second
than the senders queue: every process stays busy, and each kill cuts 32 attempts short, most of
them mid-call. Leases are short (3 s), so their jobs are claimed again quickly.

At the end (all processes stopped gracefully, so the survivors' ledger queues are written) it
counts: jobs by status, succeeded jobs with the right result, the 202/200 answers, and the
ledger rows of route ``pipeline.chat``: one per committed attempt (the call whose result the
job holds), of the job's own key; extra rows are calls made by attempts that a kill cut short
(real upstream calls, so true cost). Every mismatch is listed; the exit status is 1 if any.

    .venv/bin/python -m bench.pipelines_bench --kill-run --postgres URL [--events 10000]
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.pipelines_bench import (
    ORDER,
    postgres_schema,
    start_postgres_pair,
    start_worker,
    write_config,
)
from bench.procs import Server

SENDERS = 16
SETTLE_TIMEOUT_SECONDS = 600.0
JOB_COUNTS = "SELECT status, count(*) FROM pipeline_jobs GROUP BY status"
RIGHT_RESULTS = "SELECT count(*) FROM pipeline_jobs WHERE status = 'succeeded' AND result = $1"
TAKEN_OVER = "SELECT count(*) FROM pipeline_jobs WHERE errors::text LIKE '%lease expired%'"
# A job's attempt n made the calls whose request ids are "<job id>.<n>.<call>".
LEDGER = """
SELECT count(*) AS rows,
    count(*) FILTER (WHERE j.id IS NULL) AS orphan_rows,
    count(*) FILTER (WHERE j.key_name IS DISTINCT FROM l.key_name) AS wrong_key_rows,
    count(*) FILTER (WHERE split_part(l.request_id, '.', 2)::int = j.attempts) AS committed_rows,
    count(*) FILTER (WHERE split_part(l.request_id, '.', 2)::int <> j.attempts) AS cut_short_rows,
    count(DISTINCT l.request_id) AS distinct_request_ids
FROM usage_ledger AS l LEFT JOIN pipeline_jobs AS j ON j.id = split_part(l.request_id, '.', 1)
WHERE l.route = 'pipeline.chat'
"""
JOBS_WITHOUT_THEIR_ROW = """
SELECT count(*) FROM pipeline_jobs AS j WHERE j.status = 'succeeded' AND NOT EXISTS (
    SELECT 1 FROM usage_ledger AS l
    WHERE l.route = 'pipeline.chat' AND l.request_id LIKE j.id || '.' || j.attempts || '.%')
"""


def event_ids(events: int, duplicate_share: float, seed: int = 10) -> list[str]:
    """``events`` ids, ``duplicate_share`` of them repeats of another; a third of the repeats
    right after their original, so the two often arrive at the same instant."""
    rng = random.Random(seed)
    repeats = round(events * duplicate_share)
    ids = [f"ev-{i}" for i in range(events - repeats)]
    for _ in range(repeats):
        original = rng.randrange(len(ids))
        where = original + 1 if rng.random() < 1 / 3 else rng.randrange(len(ids) + 1)
        ids.insert(where, ids[original])
    return ids


async def send(base: str, key: str, ids: list[str], answers: Counter[str]) -> None:
    content = f"Order from Ann. mock:extract plain {json.dumps(ORDER)}"
    pending = iter(ids)

    async def sender(session: aiohttp.ClientSession) -> None:
        for event_id in pending:
            body = {"event_id": event_id, "data": {"content": content}}
            async with session.post(f"{base}/v1/pipelines/bench/events", json=body) as r:
                document = await r.json(content_type=None)
                duplicate = document.get("duplicate") is True
                answers[f"{r.status}{' duplicate' if duplicate else ''}"] += 1

    headers = {"authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))


async def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def job_counts(url: str) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in asyncio.run(query(url, JOB_COUNTS))}


def wait_working(worker: Server, timeout: float = 30.0) -> None:
    """Until the `relaygate worker` process says it runs its pipelines."""
    deadline = time.monotonic() + timeout
    while b"running pipelines" not in worker.stdout_path.read_bytes():
        worker.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker.name} did not start its pipelines in {timeout:.0f} s")
        time.sleep(0.05)


def kill_and_restart(
    workers: list[Server], index: int, config: Path, workdir: Path, url: str
) -> int:
    """SIGKILL one worker process (no drain, no release) and start a fresh one in its place."""
    victim = workers[index]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    for handle in victim.files:
        handle.close()
    workers[index] = start_worker(f"{victim.name}-r", config, workdir, url)
    return victim.pid


def run_kill(
    postgres: str,
    events: int,
    *,
    kills: int = 2,
    duplicate_share: float = 0.2,
    latency_ms: float = 100.0,
    lease_seconds: float = 3.0,
    concurrency: int = 32,
    keep: bool = False,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-pipelines-killrun-"))
    options = {"lease_seconds": lease_seconds, "retry_base_seconds": 0.2, "max_attempts": 8}
    config = write_config(
        workdir / "config.yaml", concurrency, latency_ms=latency_ms, pipeline_options=options
    )
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(postgres_schema(postgres, schema, create=True))
    url = f"{postgres}?search_path={schema}"
    ids = event_ids(events, duplicate_share)
    distinct = len(set(ids))
    answers: Counter[str] = Counter()
    servers, key = start_postgres_pair(config, workdir, url)
    gateway, workers = servers[0], [servers[1], start_worker("worker-b", config, workdir, url)]
    killed: list[dict[str, Any]] = []
    try:
        for worker in workers:
            wait_working(worker)
        started = time.perf_counter()
        sender = threading.Thread(
            target=lambda: asyncio.run(send(gateway.base_url, key, ids, answers))
        )
        sender.start()
        for k in range(kills):
            # Kill while jobs run: after 30% and 60% of the distinct jobs are done (2 kills).
            target = distinct * (k + 1) * 0.3
            while job_counts(url).get("succeeded", 0) < target:
                gateway.check_alive()
                time.sleep(0.02)
            running = job_counts(url).get("running", 0)
            pid = kill_and_restart(workers, k % 2, config, workdir, url)
            killed.append({"pid": pid, "at_seconds": time.perf_counter() - started,
                           "jobs_running_then": running})  # fmt: skip
        sender.join()
        while (counts := job_counts(url)).get("succeeded", 0) + counts.get("dead", 0) < distinct:
            for server in (gateway, *workers):
                server.check_alive()
            if time.perf_counter() - started > SETTLE_TIMEOUT_SECONDS:
                raise RuntimeError(f"jobs not settled in {SETTLE_TIMEOUT_SECONDS:.0f} s: {counts}")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        for server in (gateway, *workers):
            server.stop()
    try:
        report = _count(url, ids, answers, killed, elapsed)
    finally:
        asyncio.run(postgres_schema(postgres, schema, create=False))
        if keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _count(
    url: str, ids: list[str], answers: Counter[str], killed: list[dict[str, Any]], elapsed: float
) -> dict[str, Any]:
    distinct = len(set(ids))
    counts = job_counts(url)
    right = asyncio.run(query(url, RIGHT_RESULTS, json.dumps(ORDER)))[0][0]
    taken_over = asyncio.run(query(url, TAKEN_OVER))[0][0]
    ledger = dict(asyncio.run(query(url, LEDGER))[0])
    without_row = asyncio.run(query(url, JOBS_WITHOUT_THEIR_ROW))[0][0]
    expected = {
        "jobs succeeded": (counts.get("succeeded", 0), distinct),
        "jobs in any other status": (sum(counts.values()) - counts.get("succeeded", 0), 0),
        "succeeded jobs with the right result": (right, distinct),
        "202 answers": (answers["202"], distinct),
        "200 duplicate answers": (answers["200 duplicate"], len(ids) - distinct),
        "ledger rows of committed attempts": (ledger["committed_rows"], distinct),
        "succeeded jobs without their attempt's ledger row": (without_row, 0),
        "ledger rows of another key or no job": (
            ledger["wrong_key_rows"] + ledger["orphan_rows"], 0,
        ),
        "ledger rows sharing a request id": (ledger["rows"] - ledger["distinct_request_ids"], 0),
    }  # fmt: skip
    return {
        "events": len(ids),
        "distinct_events": distinct,
        "answers": dict(answers),
        "jobs_by_status": counts,
        "kills": killed,
        "jobs_taken_over_after_a_kill": taken_over,
        "ledger_rows": ledger["rows"],
        "ledger_rows_of_attempts_cut_short": ledger["cut_short_rows"],
        "seconds": elapsed,
        "mismatches": {k: {"got": g, "want": w} for k, (g, w) in expected.items() if g != w},
    }


def print_report(report: dict[str, Any]) -> bool:
    """Print the outcome; True when every count matched."""
    kills = ", ".join(f"{k['at_seconds']:.1f} s ({k['jobs_running_then']} running)"
                      for k in report["kills"])  # fmt: skip
    status = "OK" if not report["mismatches"] else "MISMATCH"
    print(
        f"kill-run {status}: {report['events']} events ({report['distinct_events']} distinct), "
        f"workers SIGKILLed at {kills}; jobs {report['jobs_by_status']}; "
        f"{report['jobs_taken_over_after_a_kill']} taken over after a lease expired; ledger rows "
        f"{report['ledger_rows']} ({report['ledger_rows_of_attempts_cut_short']} from attempts "
        f"cut short by the kills); {report['seconds']:.1f} s"
    )
    print(json.dumps(report, indent=2, default=str))
    return not report["mismatches"]
