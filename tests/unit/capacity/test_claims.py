"""A protected request waiting in one process claims the next slot freed in any process.

With limits shared between worker processes, a slot freed in one process used to go to whichever
process asked first (the shared limiter has no queue across processes), so a high-priority
request waiting in another worker lost it to that worker's low-priority newcomers and timed out.
Now the waiter holds a claim on the deployment's concurrency cap in the shared limiter while it
waits, lower keys' asks count the claims as held, and the waiter asks again every few
milliseconds (the release is heard only in the process that freed the slot).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import pytest
import redis
from prometheus_client import CollectorRegistry
from tests.unit.admission.support import WrappedLimiter, catalog, key, model, request
from tests.waiting import eventually

from relaygate.admission import Admitter, Ticket
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.core.context import RequestContext
from relaygate.core.errors import RateLimitedError
from relaygate.limits import MemoryLimiter, RateLimiter, RedisLimiter
from relaygate.limits.limiter import Admission, BucketAsk
from relaygate.routing.catalog import Catalog, ModelRoute
from relaygate.settings.limits import LimitSettings, QueueSettings

LOW = key(id="low", priority=0)
HIGH = key(id="high", priority=10)
NO_WAIT = {"x-relaygate-max-wait-ms": "0"}
CONC = "d:wide-0:conc"
CLAIMS = "d:wide-0:conc:claims"


@pytest.fixture
async def models() -> AsyncIterator[Catalog]:
    cat = catalog(model("wide", {"name": "wide-0", "max_concurrency": 4}))
    yield cat
    await cat.close()


class Store:
    """The limit store the workers share: in memory, or Redis (the Lua scripts)."""

    def __init__(self, redis_url: str | None) -> None:
        self._url = redis_url
        self._prefix = f"test:{{{uuid.uuid4().hex}}}:"
        self._memory = MemoryLimiter()
        self._redis = redis.Redis.from_url(redis_url) if redis_url else None

    async def limiter(self) -> RateLimiter:
        """A new worker's limiter over the store."""
        if self._url is None:
            return WrappedLimiter(self._memory)
        shared = RedisLimiter.from_url(self._url, timeout=2.0, prefix=self._prefix)
        await shared.start()
        return shared

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    def held(self, name: str) -> int:
        if self._redis is None:
            return self._memory.held(name)
        return int(self._redis.zcard(self._prefix + name))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    url: str | None = None
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
    found = Store(url)
    yield found
    found.close()


async def worker(
    cat: Catalog,
    store: Store,
    max_wait: float,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Admitter:
    """One of two worker processes' admitters over one shared limit store. The queue's own
    re-check period is far longer than any wait here: only a claim's polling can find a slot
    freed in the other process."""
    queue = QueueSettings(max_wait_seconds=max_wait, poll_seconds=60.0)
    settings = LimitSettings.model_validate({"queue": queue})
    gate = Admitter(
        settings,
        await store.limiter(),
        lookup=cat.get,
        metrics=AdmissionMetrics(registry or CollectorRegistry()),
        workers=2,
        clock=clock,
    )
    gate.start()
    return gate


def done(gate: Admitter, ticket: Ticket) -> None:
    gate.finish(ticket, RequestContext("req", "openai.chat", "openai"))


async def test_a_slot_freed_in_another_worker_goes_to_the_protected_waiter(
    models: Catalog, store: Store
) -> None:
    shared = store
    a, b = await worker(models, store, 30.0), await worker(models, store, 30.0)
    route = models.resolve("wide")
    try:
        lows = [await b.admit(LOW, route, request("wide"), NO_WAIT) for _ in range(4)]
        waiting = asyncio.ensure_future(a.admit(HIGH, route, request("wide"), {}))
        await eventually(lambda: shared.held(CLAIMS) == 1)
        done(b, lows.pop())  # a slot comes back in the other worker
        await eventually(lambda: shared.held(CONC) == 3 or waiting.done())
        with pytest.raises(RateLimitedError):  # that worker's own newcomer must leave it
            await b.admit(LOW, route, request("wide"), NO_WAIT)
        ticket = await waiting
        assert ticket.capacity is not None and ticket.capacity.reserved == "wide-0"
        await eventually(lambda: shared.held(CLAIMS) == 0)  # the claim is dropped once admitted
        assert shared.held(CONC) == 4
        done(a, ticket)
        for low in lows:
            done(b, low)
        await eventually(lambda: shared.held(CONC) == 0)
    finally:
        await a.close()
        await b.close()


async def test_a_worker_admitting_little_does_not_refuse_a_claimant_on_its_own_rate(
    models: Catalog, store: Store
) -> None:
    """The kernel does not split connections evenly between workers: one may admit little. A
    protected request there used to be refused at once, its wait forecast from that worker's
    own admissions; a claimant is left the next slot freed in any worker, so it expects one
    within a typical hold over the cap (5 ms here), and waits for it."""
    clock = Clock()
    a = await worker(models, store, 1.0, clock=clock)
    b = await worker(models, store, 1.0)
    route = models.resolve("wide")
    try:
        await learn_a_hold_of_20_ms(a, route, clock, store)
        clock.now += 2.0  # and it has admitted nothing since: its own rate is near nil
        lows = [await b.admit(LOW, route, request("wide"), NO_WAIT) for _ in range(4)]
        waiting = asyncio.ensure_future(a.admit(HIGH, route, request("wide"), {}))
        await eventually(lambda: store.held(CLAIMS) == 1 or waiting.done())
        assert not waiting.done()  # waiting, not refused at once
        await admitted_once_b_frees_a_slot(a, b, waiting, lows)
    finally:
        await a.close()
        await b.close()


async def test_a_claimant_waits_to_its_deadline_whatever_the_forecast(
    models: Catalog, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each slot freed in any worker is handed to a claimant, and the forecast is only the mean
    time to the next release: a claimant used to be refused as soon as a try found no room
    with less than that mean left, giving up on a slot as likely to come the next millisecond
    (most protected failures of the 2-worker surge). It now waits to its deadline."""
    clock = Clock()
    a = await worker(models, store, 0.008, clock=clock)
    b = await worker(models, store, 1.0)
    route = models.resolve("wide")
    tries = [0]
    acquire = a.limiter.acquire

    async def counted(asks: Sequence[BucketAsk]) -> Admission:
        tries[0] += 1
        return await acquire(asks)

    monkeypatch.setattr(a.limiter, "acquire", counted)
    try:
        await learn_a_hold_of_20_ms(a, route, clock, store)  # with a cap of 4, one frees every 5 ms
        lows = [await b.admit(LOW, route, request("wide"), NO_WAIT) for _ in range(4)]
        waiting = asyncio.ensure_future(a.admit(HIGH, route, request("wide"), {}))
        await eventually(lambda: store.held(CLAIMS) == 1 or waiting.done())
        clock.now += 0.004  # 4 ms of its 8 left: less than the 5 ms forecast
        asked = tries[0]
        await eventually(lambda: tries[0] >= asked + 3 or waiting.done())  # polls found no room
        assert not waiting.done()
        await admitted_once_b_frees_a_slot(a, b, waiting, lows)
    finally:
        await a.close()
        await b.close()


async def learn_a_hold_of_20_ms(a: Admitter, route: ModelRoute, clock: Clock, store: Store) -> None:
    """Worker ``a`` holds one slot 20 ms: its typical hold."""
    first = await a.admit(HIGH, route, request("wide"), NO_WAIT)
    clock.now += 0.02
    done(a, first)
    await eventually(lambda: store.held(CONC) == 0)


async def admitted_once_b_frees_a_slot(
    a: Admitter, b: Admitter, waiting: asyncio.Future[Ticket], lows: list[Ticket]
) -> None:
    """Worker ``b`` frees one of the lower keys' slots: ``a``'s waiter gets it."""
    done(b, lows.pop())
    ticket = await asyncio.wait_for(waiting, 10.0)
    assert ticket.capacity is not None and ticket.capacity.reserved == "wide-0"
    done(a, ticket)
    for low in lows:
        done(b, low)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_protected_waiter_refused_drops_its_claim(models: Catalog, store: Store) -> None:
    shared = store
    registry = CollectorRegistry()
    a, b = await worker(models, store, 0.05, registry), await worker(models, store, 0.05)
    route = models.resolve("wide")
    try:
        lows = [await b.admit(LOW, route, request("wide"), NO_WAIT) for _ in range(4)]
        with pytest.raises(RateLimitedError):
            await a.admit(LOW, route, request("wide"), NO_WAIT)
        with pytest.raises(RateLimitedError):
            await a.admit(HIGH, route, request("wide"), {})
        # Only the protected refusal is counted apart, under why it was refused.
        counted = {
            result: registry.get_sample_value(
                "relaygate_admission_protected_refusals_total", {"result": result}
            )
            for result in ("busy", "queue_timeout")
        }
        assert sum(v or 0 for v in counted.values()) == 1
        await eventually(lambda: shared.held(CLAIMS) == 0)
        done(b, lows.pop())  # no claim left: a lower key may take the slot again
        await eventually(lambda: shared.held(CONC) == 3)
        lows.append(await b.admit(LOW, route, request("wide"), NO_WAIT))
        for low in lows:
            done(b, low)
    finally:
        await a.close()
        await b.close()


async def test_lower_keys_and_a_single_process_make_no_claims(models: Catalog) -> None:
    """Claims only matter across processes: with limits in this process (the queue already
    serves by priority) and for lower keys, waiting costs no claim."""
    shared = Store(None)
    b = await worker(models, shared, 0.05)
    single = Admitter(
        LimitSettings.model_validate({"queue": QueueSettings(max_wait_seconds=0.05)}),
        shared._memory,
        lookup=models.get,
    )
    route = models.resolve("wide")
    try:
        lows = [await b.admit(LOW, route, request("wide"), NO_WAIT) for _ in range(4)]
        with pytest.raises(RateLimitedError):
            await b.admit(LOW, route, request("wide"), {})
        with pytest.raises(RateLimitedError):
            await single.admit(HIGH, route, request("wide"), {})
        assert shared.held(CLAIMS) == 0
        for low in lows:
            done(b, low)
    finally:
        await b.close()
