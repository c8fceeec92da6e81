"""The shared limiter: every bucket in Redis, one EVALSHA per admission.

Check and increment are one Lua script over all of a request's buckets, with the server's own
clock, so any number of gateway processes and machines see exactly one set of counts. There is no
local pre-check: a process never decides from its own memory (the anchor failure that multiplies
a limit by the number of replicas). Concurrency leases carry a TTL and are renewed while held, so
a killed process frees its slots within one TTL.

The script calls made in one turn of the event loop (a busy worker's admissions and releases)
leave together in one pipeline: one write, one read and one pass through redis-py's per-call
machinery (pool checkout, retries, timeouts) for all of them, which costs ~30 us of CPU per call
against ~100-135 us for calls sent one by one (bench/README.md, "Capacity by the process, second
look"). Each call still runs on its own and gets its own answer; only their trip is shared.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from relaygate.core.background import BackgroundTask
from relaygate.core.redis_client import bounded_client
from relaygate.limits.limiter import (
    ADMITTED,
    Admission,
    BucketAsk,
    BucketKind,
    BucketSettle,
    Lease,
    LimiterUnavailableError,
)

logger = logging.getLogger("relaygate.admission")

BACKEND = "redis"
# One hash slot for every key (the braces), so multi-key scripts also run on a Redis Cluster.
DEFAULT_PREFIX = "rg:{lim}:"
LOWEST_SUFFIX = ":lowest"  # a concurrency bucket's lowest capacity asked lately (``keep_lowest``)
_RENEW_BATCH = 500


def _script(name: str) -> str:
    return resources.files("relaygate.limits").joinpath("lua", name).read_text("utf-8")


_Call = tuple[AsyncScript, list[str], list[Any], "asyncio.Future[Any]"]


def _fail(calls: list[_Call], exc: Exception) -> None:
    for *_, answer in calls:
        if not answer.done():
            answer.set_exception(exc)


class _Trips:
    """Script calls gathered over one turn of the event loop and sent as one pipeline."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pending: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.count = 0
        """Pipelines sent so far (each one round trip)."""

    def call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._flush)
        answer: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, answer))
        return answer

    def _flush(self) -> None:
        calls, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(calls))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, calls: list[_Call], reload: bool = True) -> None:
        self.count += 1
        pipe = self._client.pipeline(transaction=False)
        for script, keys, args, _ in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            results = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for *_, answer in calls:
                answer.cancel()
            raise
        except Exception as exc:  # the whole trip failed: every call with it
            _fail(calls, exc)
            return
        lost: list[_Call] = []
        for call, result in zip(calls, results, strict=True):
            answer = call[3]
            if reload and isinstance(result, NoScriptError):
                lost.append(call)
            elif answer.done():
                continue  # its caller gave up
            elif isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)
        if lost:  # Redis restarted or flushed its scripts: load them, send those calls again
            try:
                for script in {id(call[0]): call[0] for call in lost}.values():
                    script.sha = await self._client.script_load(script.script)
            except Exception as exc:
                _fail(lost, exc)
                return
            await self._send(lost, reload=False)

    async def close(self) -> None:
        """Wait for the trips under way."""
        if self._pending:
            self._flush()
        await asyncio.gather(*self._sending, return_exceptions=True)


class RedisLimiter:
    """Buckets in Redis, shared by every process that uses the same ``prefix``."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        lease_ttl: float = 15.0,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = max(1, round(lease_ttl * 1000))
        self._instance = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._held: dict[str, tuple[str, ...]] = {}
        self._trips = _Trips(client)
        self._acquire = client.register_script(_script("acquire.lua"))
        self._release = client.register_script(_script("release.lua"))
        self._renew = client.register_script(_script("renew.lua"))
        self._renewer = BackgroundTask("relaygate-leases", self._renew_forever)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = 0.25,
        lease_ttl: float = 15.0,
        prefix: str = DEFAULT_PREFIX,
    ) -> RedisLimiter:
        """A limiter on its own connection pool; ``timeout`` bounds every Redis call."""
        return cls(bounded_client(url, timeout=timeout), lease_ttl=lease_ttl, prefix=prefix)

    @property
    def backend(self) -> str:
        return BACKEND

    @property
    def round_trips(self) -> int:
        """Pipelines of script calls sent so far."""
        return self._trips.count

    @property
    def held_leases(self) -> int:
        """Leases this process holds now."""
        return len(self._held)

    async def start(self) -> None:
        """Load the scripts (raises ``LimiterUnavailableError``) and start renewing leases."""
        await self.ping()
        self._renewer.start()

    async def ping(self) -> None:
        """Raise ``LimiterUnavailableError`` unless Redis answers and holds the scripts."""
        try:
            await self._client.ping()
            for script in (self._acquire, self._release, self._renew):
                await self._client.script_load(script.script)
        except (RedisError, OSError) as exc:
            raise LimiterUnavailableError(f"Redis unreachable: {exc}") from exc

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission:
        if not asks:
            return ADMITTED
        lease_id = f"{self._instance}:{next(self._ids)}"
        keys = [self._prefix + ask.name for ask in asks]
        args: list[Any] = [lease_id, self._ttl_ms]
        for ask in asks:
            behind = 0  # the 1-based index of the bucket whose leases count here too, if any
            if ask.behind is not None:
                keys.append(self._prefix + ask.behind)
                behind = len(keys)
            lowest = 0  # the 1-based index of the bucket's lowest-capacity record, if kept
            if ask.keep_lowest > 0:
                keys.append(self._prefix + ask.name + LOWEST_SUFFIX)
                lowest = len(keys)
            queueable = 1 if ask.queueable else 0
            args += [ask.kind.value, ask.rate, ask.capacity, ask.cost, queueable, behind]
            args += [lowest, ask.keep_lowest * 1000]
        admitted, retry_us, refused, queueable = await self._call(self._acquire, keys, args)
        if not admitted:
            name = asks[int(refused) - 1].name
            return Admission(False, int(retry_us) / 1e6, name, bool(queueable))
        names = tuple(ask.name for ask in asks if ask.kind is BucketKind.CONCURRENCY)
        if not names:
            return ADMITTED
        self._held[lease_id] = names
        return Admission(True, lease=Lease(lease_id, names, BACKEND))

    async def settle(self, settles: Sequence[BucketSettle]) -> None:
        await self.release(None, settles)

    async def release(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
        names: tuple[str, ...] = ()
        if lease is not None:
            # Given back whether or not it is still renewed here: a lease forgotten in an outage
            # (or whose release failed) is released once Redis answers, not left to its TTL.
            self._held.pop(lease.id, None)
            names = lease.names
        if not names and not settles:
            return
        keys = [self._prefix + name for name in names]
        keys += [self._prefix + item.name for item in settles]
        args: list[Any] = [lease.id if lease is not None else "", len(names)]
        for item in settles:
            args += [item.rate, item.capacity, item.refund]
        await self._call(self._release, keys, args)

    async def renew(self) -> int:
        """Extend every lease this process holds; the number of lease slots renewed."""
        pairs = [(name, lease) for lease, names in list(self._held.items()) for name in names]
        renewed = 0
        for start in range(0, len(pairs), _RENEW_BATCH):
            batch = pairs[start : start + _RENEW_BATCH]
            keys = [self._prefix + name for name, _ in batch]
            result = await self._call(
                self._renew, keys, [self._ttl_ms, *(lease for _, lease in batch)]
            )
            renewed += int(result)
        return renewed

    def forget_leases(self) -> None:
        """Stop renewing every lease (they expire by TTL): for when Redis was lost meanwhile."""
        self._held.clear()

    async def close(self) -> None:
        await self._renewer.cancel()
        await self._trips.close()
        await self._client.aclose()

    async def _call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._trips.call(script, keys, args)
        except (RedisError, OSError) as exc:
            raise LimiterUnavailableError(f"Redis call failed: {exc}") from exc

    async def _renew_forever(self) -> None:
        period = self._ttl_ms / 3000
        while True:
            await asyncio.sleep(period)
            if not self._held:
                continue
            try:
                await self.renew()
            except LimiterUnavailableError as exc:
                logger.warning("could not renew concurrency leases: %s", exc)
