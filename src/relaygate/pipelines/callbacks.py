"""Callbacks: a finished job's document POSTed to its callback URL, signed, retried, recorded.

Signature header: ``x-relaygate-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>.<body>")>`` (the Stripe scheme: the timestamp inside the MAC lets receivers refuse replays).
Without a configured secret the POST carries no signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson

from relaygate.core.background import BackgroundTask
from relaygate.jobs import CallbackStatus, Job, JobStore, retry_delay
from relaygate.pipelines.attempt import AttemptEnd
from relaygate.pipelines.compiled import CompiledPipeline
from relaygate.store import StoreError

logger = logging.getLogger("relaygate.pipelines")
SIGNATURE_HEADER = "x-relaygate-signature"
MAX_ERROR_CHARS = 300
SWEEP_SECONDS = 30.0
SWEEP_GRACE_SECONDS = 60.0
SWEEP_BATCH = 100


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class Callbacks:
    """Delivers callbacks in background tasks, so a slow receiver never holds a job slot."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[bool]] = set()
        self._in_flight: set[str] = set()
        self._sweeper: BackgroundTask | None = None

    async def on_end(self, pipeline: CompiledPipeline, job: Job, end: AttemptEnd) -> None:
        if job.callback_status != "pending" or job.callback_url is None:
            return
        self._start(pipeline, job)

    def _start(self, pipeline: CompiledPipeline, job: Job) -> None:
        self._in_flight.add(job.id)
        task = asyncio.create_task(self.deliver(pipeline, job), name=f"callback-{job.id}")
        self._tasks.add(task)

        def done(task: asyncio.Task[bool]) -> None:
            self._tasks.discard(task)
            self._in_flight.discard(job.id)

        task.add_done_callback(done)

    async def sweep(
        self, pipelines: Mapping[str, CompiledPipeline], grace_seconds: float = SWEEP_GRACE_SECONDS
    ) -> int:
        """Deliver callbacks still pending ``grace_seconds`` after their job ended: their process
        stopped before delivering. At least once: a receiver may see a job twice (dedupe by id)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
        started = 0
        for job in await self._store.pending_callbacks(SWEEP_BATCH):
            pipeline = pipelines.get(job.pipeline)
            ended = job.finished_at is not None and job.finished_at <= cutoff
            if pipeline is not None and ended and job.id not in self._in_flight:
                self._start(pipeline, job)
                started += 1
        return started

    def start_sweeping(self, pipelines: Mapping[str, CompiledPipeline]) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(SWEEP_SECONDS)
                try:
                    await self.sweep(pipelines)
                except StoreError as exc:
                    logger.warning("pending callbacks not swept: %s", exc)

        self._sweeper = BackgroundTask("pipeline-callbacks", loop)
        self._sweeper.start()

    async def deliver(self, pipeline: CompiledPipeline, job: Job) -> bool:
        """POST until a 2xx or ``callback_max_attempts``; the outcome is recorded on the job."""
        assert job.callback_url is not None
        settings = pipeline.settings
        body = orjson.dumps(job.document())
        error: str | None = None
        attempt = 0
        for attempt in range(1, settings.callback_max_attempts + 1):
            error = await self._post(job.callback_url, body, pipeline)
            if error is None:
                break
            if attempt < settings.callback_max_attempts:
                await asyncio.sleep(retry_delay(attempt, base=settings.callback_retry_base_seconds))
        status: CallbackStatus = "delivered" if error is None else "failed"
        if error is not None:
            logger.warning("job %s: callback failed after %d attempts: %s", job.id, attempt, error)
        try:
            await self._store.record_callback(job.id, status, attempt, error)
        except StoreError as exc:
            logger.warning("job %s: cannot record the callback outcome: %s", job.id, exc)
        return error is None

    async def _post(self, url: str, body: bytes, pipeline: CompiledPipeline) -> str | None:
        """None on a 2xx, else what went wrong."""
        headers = {"content-type": "application/json", "user-agent": "relaygate-callback"}
        if pipeline.callback_secret:
            headers[SIGNATURE_HEADER] = signature(pipeline.callback_secret, body, int(time.time()))
        timeout = aiohttp.ClientTimeout(total=pipeline.settings.callback_timeout_seconds)
        try:
            async with self._client().post(url, data=body, headers=headers, timeout=timeout) as r:
                if 200 <= r.status < 300:
                    return None
                return f"HTTP {r.status}: {(await r.text(errors='replace'))[:MAX_ERROR_CHARS]}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return f"{type(exc).__name__}: {str(exc)[:MAX_ERROR_CHARS]}"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Let deliveries in flight finish for a moment, then cancel the rest."""
        if self._sweeper is not None:
            await self._sweeper.cancel()
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
