"""A request that may not wait for its model's full deployments is refused before its body is
decoded (``Admitter.refuse_busy``): the same 429 ``admit`` would give, counted the same way, and
nothing taken from any bucket while checking. Where the answer would need the decoded request, or
could differ from ``admit``'s, the check leaves the request to ``admit``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from tests.unit.admission.support import WrappedLimiter, catalog, key, model, request

from relaygate.admission import Admitter, Ticket
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.core.context import RequestContext
from relaygate.core.errors import RateLimitedError
from relaygate.limits import MemoryLimiter
from relaygate.routing.catalog import Catalog
from relaygate.settings.limits import (
    AdaptiveSettings,
    DegradeSettings,
    LevelActions,
    LevelThresholds,
    LimitSettings,
    PriorityReserveSettings,
    QueueSettings,
)

NO_WAIT = {"x-relaygate-max-wait-ms": "0"}
NO_HEADERS: dict[str, str] = {}


@pytest.fixture
async def models() -> AsyncIterator[Catalog]:
    cat = catalog(
        model("free"),
        model("one", {"max_concurrency": 1}),
        model("pair", {"name": "pair-a", "max_concurrency": 1}, {"name": "pair-b", "rpm": 1}),
        model("metered", {"max_concurrency": 1, "tpm": 1000}),
        model("spill", {"max_concurrency": 1}, fallbacks=["free"]),
    )
    yield cat
    await cat.close()


def admitter(cat: Catalog, **settings: object) -> tuple[Admitter, CollectorRegistry]:
    registry = CollectorRegistry()
    gate = Admitter(
        LimitSettings.model_validate(settings),
        MemoryLimiter(),
        lookup=cat.get,
        metrics=AdmissionMetrics(registry),
    )
    return gate, registry


def busy_refusals(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("relaygate_admission_decisions_total", {"result": "busy"})


async def hold(gate: Admitter, cat: Catalog, name: str) -> Ticket:
    return await gate.admit(key(), cat.resolve(name), request(name), NO_HEADERS)


async def test_a_full_model_is_refused_early_as_admit_would(models: Catalog) -> None:
    gate, registry = admitter(models)
    route = models.resolve("one")
    gate.refuse_busy(key(), route, NO_WAIT)  # a free slot: left to admit
    held = await hold(gate, models, "one")
    with pytest.raises(RateLimitedError) as late:
        await gate.admit(key(), route, request("one"), NO_WAIT)
    with pytest.raises(RateLimitedError) as early:
        gate.refuse_busy(key(), route, NO_WAIT)
    assert early.value.message == late.value.message == "relaygate is busy: retry in 1 s"
    assert 0 < (early.value.retry_after or 0) <= 1  # the queue's expected wait, as admit's
    assert busy_refusals(registry) == 2
    gate.finish(held, RequestContext("r", "x", "openai"))
    gate.refuse_busy(key(), route, NO_WAIT)  # checking took nothing: the slot is free again
    await hold(gate, models, "one")


async def test_a_request_that_may_wait_is_left_to_the_queue(models: Catalog) -> None:
    gate, registry = admitter(models)
    route = models.resolve("one")
    await hold(gate, models, "one")
    gate.refuse_busy(key(), route, NO_HEADERS)  # the configured wait (1 s) may see a slot
    gate.refuse_busy(key(), route, {"x-relaygate-max-wait-ms": "900"})
    assert not busy_refusals(registry)
    with pytest.raises(RateLimitedError):  # one admission just now: ~0.5 s expected per slot
        gate.refuse_busy(key(), route, {"x-relaygate-max-wait-ms": "100"})
    configured_no_wait, _ = admitter(models, queue=QueueSettings(max_wait_seconds=0))
    await hold(configured_no_wait, models, "one")
    with pytest.raises(RateLimitedError, match="relaygate is busy"):
        configured_no_wait.refuse_busy(key(), route, NO_HEADERS)


async def test_any_deployment_with_room_lets_the_request_through(models: Catalog) -> None:
    gate, _ = admitter(models)
    route = models.resolve("pair")
    await hold(gate, models, "pair")  # takes one of the two deployments
    gate.refuse_busy(key(), route, NO_WAIT)
    await hold(gate, models, "pair")  # and the other
    with pytest.raises(RateLimitedError):
        gate.refuse_busy(key(), route, NO_WAIT)


async def test_checks_that_would_need_the_decoded_request_are_left_to_admit(
    models: Catalog,
) -> None:
    gate, _ = admitter(models)
    for name in ("metered", "spill", "free"):  # a TPM cap; an uncapped fallback; no caps
        await hold(gate, models, name)
        gate.refuse_busy(key(), models.resolve(name), NO_WAIT)
    with pytest.raises(RateLimitedError):
        await gate.admit(key(), models.resolve("metered"), request("metered"), NO_WAIT)


async def test_a_shared_limiter_is_left_to_admit(models: Catalog) -> None:
    shared = Admitter(LimitSettings(), WrappedLimiter(MemoryLimiter()), lookup=models.get)
    await hold(shared, models, "one")
    shared.refuse_busy(key(), models.resolve("one"), NO_WAIT)  # would cost a round trip
    with pytest.raises(RateLimitedError):
        await shared.admit(key(), models.resolve("one"), request("one"), NO_WAIT)


async def test_slots_kept_for_high_priority_keys_refuse_only_lower_ones(models: Catalog) -> None:
    reserve = PriorityReserveSettings(min_priority=10, margin=1, max_share=0.5)
    gate, _ = admitter(
        models,
        priority_reserve=reserve,
        adaptive=AdaptiveSettings(enabled=True, initial_limit=2, min_limit=2, max_limit=2),
    )
    route = models.resolve("free")  # every deployment is governed with the adaptive limit on
    vip = key(priority=10)
    ticket = await gate.admit(vip, route, request("free"), NO_HEADERS)
    gate.finish(ticket, RequestContext("r", "x", "openai"))  # the reserve now keeps one slot
    await gate.admit(key(), route, request("free"), NO_HEADERS)
    with pytest.raises(RateLimitedError):
        gate.refuse_busy(key(), route, NO_WAIT)
    gate.refuse_busy(vip, route, NO_WAIT)
    await gate.admit(vip, route, request("free"), NO_WAIT)
    with pytest.raises(RateLimitedError):
        gate.refuse_busy(vip, route, NO_WAIT)  # the adaptive limit itself is full


async def test_a_model_with_degradation_actions_is_left_to_admit(models: Catalog) -> None:
    actions = LevelActions(serve_stale=True)
    degrade = DegradeSettings(
        enabled=True,
        min_samples=1,
        reduced=LevelThresholds(latency_p90_ms=1, error_rate=0.01),
        degraded=LevelThresholds(latency_p90_ms=5000, error_rate=0.9),
        reduced_actions=actions,
        degraded_actions=actions,
    )
    gate, _ = admitter(models, degrade=degrade)
    route = models.resolve("one")
    await hold(gate, models, "one")
    with pytest.raises(RateLimitedError):
        gate.refuse_busy(key(), route, NO_WAIT)  # normal level: no actions
    level = gate.degrade.get("one")
    level.record(2.0, error=True)
    level._evaluated -= 1  # as if the second had turned
    assert level.actions() == actions
    gate.refuse_busy(key(), route, NO_WAIT)  # the handler may answer it from stale entries
