"""The worker loop of one pipeline: claim due jobs up to its concurrency, run each attempt under
a renewed lease and a timeout, and commit its end fenced by the lease token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from relaygate.core.background import BackgroundTask
from relaygate.jobs import AttemptOutcome, Failure, Job, JobStore, Success, Usage, retry_delay
from relaygate.pipelines.attempt import AttemptEnd, Failed, Succeeded, run_attempt
from relaygate.pipelines.compiled import CompiledPipeline
from relaygate.pipelines.gateway import GatewayPath, Spent
from relaygate.pipelines.group_commit import GroupCommit
from relaygate.store import StoreError

logger = logging.getLogger("relaygate.pipelines")
POLL_SECONDS = 0.5
ERROR_PAUSE_SECONDS = 2.0
CLAIM_BATCH_SECONDS = 0.005
CLAIM_BATCH_DIVISOR = 4  # claim when a quarter of the slots are free
# Attempt ends wait this long for others to share their write (and its ledger flush): a job's
# result lands a few ms later, an event's acceptance is not delayed.
FINISH_WINDOW_SECONDS = 0.005
OnEnd = Callable[[CompiledPipeline, Job, AttemptEnd], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


class PipelineWorker:
    """At most ``concurrency`` of the pipeline's jobs run at once in this process."""

    def __init__(
        self,
        pipeline: CompiledPipeline,
        store: JobStore,
        path: GatewayPath,
        on_end: OnEnd | None = None,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.pipeline = pipeline
        self._store = store
        self._path = path
        self._on_end = on_end
        self._poll_seconds = poll_seconds
        self._running: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._freed = asyncio.Event()
        self._ends: GroupCommit[AttemptOutcome, Job | None] = GroupCommit(
            self._finish_many, window=FINISH_WINDOW_SECONDS
        )
        self._loop = BackgroundTask(f"pipeline-{pipeline.name}", self._claim_loop)

    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        """A job was queued here: claim now instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming and cancel running attempts; their jobs are released to the queue (the
        stopped attempt not counted), or, if that fails, run again once their leases end."""
        await self._loop.cancel()
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._ends.close()

    async def _claim_loop(self) -> None:
        settings = self.pipeline.settings
        while True:
            free = settings.concurrency - len(self._running)
            claimed: list[Job] = []
            if free > 0:
                now = utc_now()
                lease_until = now + timedelta(seconds=settings.lease_seconds)
                try:
                    claimed = await self._store.claim(settings.name, free, now, lease_until)
                except StoreError as exc:
                    logger.warning("pipeline %s: claiming jobs failed: %s", settings.name, exc)
                    await asyncio.sleep(ERROR_PAUSE_SECONDS)
                    continue
                except Exception:
                    # The loop is this task's top handler: the pipeline must keep running.
                    logger.exception("pipeline %s: claiming failed unexpectedly", settings.name)
                    await asyncio.sleep(ERROR_PAUSE_SECONDS)
                    continue
            for job in claimed:
                task = asyncio.create_task(self._run_job(job), name=f"job-{job.id}")
                self._running.add(task)
                task.add_done_callback(self._done)
            if len(claimed) < free:
                # Nothing more is due: wait for new work (or the poll), not for free slots.
                await self._wait(self._wake, self._poll_seconds)
            elif len(claimed) == free:
                # Every slot is busy and more may be due: claim again once a batch of slots
                # has freed (or a moment has passed), not one claim per finished job.
                await self._wait(self._freed, self._poll_seconds)
                await self._wait_for_slots(max(1, settings.concurrency // CLAIM_BATCH_DIVISOR))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._freed.set()

    async def _wait_for_slots(self, wanted: int) -> None:
        deadline = asyncio.get_running_loop().time() + CLAIM_BATCH_SECONDS
        while self.pipeline.settings.concurrency - len(self._running) < wanted:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await self._wait(self._freed, left)

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass
        event.clear()

    async def _run_job(self, job: Job) -> None:
        spent = Spent()
        attempt = asyncio.create_task(self._attempt(job, spent))
        renewer = asyncio.create_task(self._renew(job, attempt))
        try:
            end = await attempt
        except asyncio.CancelledError:
            if attempt.cancelled() and not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                logger.warning("job %s: lease lost to another worker; attempt dropped", job.id)
                return
            await self._release(job)  # stopping: the job goes back to the queue now
            raise
        finally:
            renewer.cancel()
        try:
            await self._commit(job, end, spent)
        except StoreError as exc:
            # The lease lapses and the job runs again: nothing is lost, at worst repeated.
            logger.warning("job %s: cannot record the attempt's end: %s", job.id, exc)

    async def _release(self, job: Job) -> None:
        assert job.lease_token is not None
        try:
            await self._store.release(job.id, job.lease_token, utc_now())
        except StoreError as exc:
            logger.warning(
                "job %s: not released (it runs again once its lease ends): %s", job.id, exc
            )

    async def _attempt(self, job: Job, spent: Spent) -> AttemptEnd:
        timeout = self.pipeline.settings.timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                return await run_attempt(self.pipeline, job, self._path, spent)
        except TimeoutError:
            return Failed(f"the attempt timed out after {timeout:g} s", "timeout")
        except Exception as exc:
            # A defect, not the job's fault: recorded on the job as a failed attempt, not lost.
            logger.exception("job %s: the attempt failed unexpectedly", job.id)
            return Failed(f"internal gateway error ({type(exc).__name__})", "internal")

    async def _renew(self, job: Job, attempt: asyncio.Task[AttemptEnd]) -> None:
        lease = self.pipeline.settings.lease_seconds
        assert job.lease_token is not None
        while True:
            await asyncio.sleep(lease / 3)
            try:
                held = await self._store.renew(
                    job.id, job.lease_token, utc_now() + timedelta(seconds=lease)
                )
            except StoreError as exc:
                logger.warning("job %s: lease renewal failed: %s", job.id, exc)
                continue
            if not held:
                attempt.cancel()
                return

    async def _commit(self, job: Job, end: AttemptEnd, spent: Spent) -> None:
        assert job.lease_token is not None
        usage = Usage(spent.cost_usd, spent.input_tokens, spent.output_tokens)
        outcome: AttemptOutcome
        if isinstance(end, Succeeded):
            outcome = Success(job.id, job.lease_token, end.value, end.validity, usage)
        else:
            base = self.pipeline.settings.retry_base_seconds
            retry_at = utc_now() + timedelta(seconds=retry_delay(job.attempts, base=base))
            outcome = Failure(job.id, job.lease_token, end.error, usage, retry_at)
        committed = await self._ends.submit(outcome)
        if committed is None:
            logger.warning("job %s: lease lost before the result was committed", job.id)
            return
        if self._on_end is not None:
            await self._on_end(self.pipeline, committed, end)

    async def _finish_many(self, outcomes: Sequence[AttemptOutcome]) -> list[Job | None]:
        """One write for the attempts that ended together. Their calls' ledger rows are written
        (or spilled to disk) first: a committed job never lacks the ledger row of its call."""
        ledger = self._path.accounting.ledger
        if ledger is not None:
            await ledger.flush()
        return await self._store.finish_many(outcomes, utc_now())
