"""A key whose own quota is spent is refused from its headers alone, before the body is read:
the same 429 ``admit`` would give, and nothing taken from the buckets while checking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from tests.unit.admission.support import WrappedLimiter, catalog, key, model, request

from relaygate.admission import Admitter
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.core.context import RequestContext
from relaygate.core.errors import RateLimitedError
from relaygate.core.types import Usage
from relaygate.limits import MemoryLimiter
from relaygate.routing.catalog import Catalog
from relaygate.settings.limits import LimitSettings

NO_HEADERS: dict[str, str] = {}


@pytest.fixture
async def models() -> AsyncIterator[Catalog]:
    cat = catalog(model("free"))
    yield cat
    await cat.close()


def admitter(cat: Catalog) -> tuple[Admitter, CollectorRegistry]:
    registry = CollectorRegistry()
    gate = Admitter(
        LimitSettings(), MemoryLimiter(), lookup=cat.get, metrics=AdmissionMetrics(registry)
    )
    return gate, registry


def key_limit_refusals(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("relaygate_admission_decisions_total", {"result": "key_limit"})


async def test_a_spent_rate_is_refused_early_as_admit_would(models: Catalog) -> None:
    gate, registry = admitter(models)
    limited = key(rps=0.5, burst=2)
    route = models.resolve("free")
    for _ in range(10):
        gate.refuse_spent_key(limited)  # checking takes nothing from the bucket
    for _ in range(2):
        await gate.admit(limited, route, request("free"), NO_HEADERS)
    with pytest.raises(RateLimitedError) as late:
        await gate.admit(limited, route, request("free"), NO_HEADERS)
    with pytest.raises(RateLimitedError) as early:
        gate.refuse_spent_key(limited)
    assert early.value.message == late.value.message
    assert early.value.message.startswith("This API key exceeded its request rate limit")
    assert 0 < (early.value.retry_after or 0) <= (late.value.retry_after or 0) <= 2
    assert key_limit_refusals(registry) == 2


async def test_held_concurrency_is_refused_early_until_finished(models: Catalog) -> None:
    gate, _ = admitter(models)
    one = key(max_concurrent=1)
    ticket = await gate.admit(one, models.resolve("free"), request("free"), NO_HEADERS)
    with pytest.raises(RateLimitedError, match="limit of concurrent requests"):
        gate.refuse_spent_key(one)
    gate.finish(ticket, RequestContext("r", "x", "openai"))
    gate.refuse_spent_key(one)


async def test_a_tokens_per_minute_debt_is_refused_early(models: Catalog) -> None:
    gate, _ = admitter(models)
    thrifty = key(tpm=100)
    ticket = await gate.admit(thrifty, models.resolve("free"), request("free"), NO_HEADERS)
    gate.refuse_spent_key(thrifty)
    ctx = RequestContext("r", "x", "openai")
    ctx.usage = Usage(input_tokens=500, output_tokens=500)  # far more than it reserved
    gate.finish(ticket, ctx)
    with pytest.raises(RateLimitedError, match="tokens-per-minute limit"):
        gate.refuse_spent_key(thrifty)


def test_an_unlimited_key_or_a_shared_limiter_is_never_refused_early(models: Catalog) -> None:
    gate, _ = admitter(models)
    gate.refuse_spent_key(key())
    shared = Admitter(LimitSettings(), WrappedLimiter(MemoryLimiter()), lookup=models.get)
    spent = key(max_concurrent=0)
    shared.refuse_spent_key(spent)  # left to admit(): the check would cost a round trip
    with pytest.raises(RateLimitedError):
        gate.refuse_spent_key(spent)


async def test_a_change_of_the_keys_limits_takes_effect_at_once(models: Catalog) -> None:
    gate, _ = admitter(models)
    one = key(max_concurrent=1)
    await gate.admit(one, models.resolve("free"), request("free"), NO_HEADERS)
    with pytest.raises(RateLimitedError):
        gate.refuse_spent_key(one)
    gate.refuse_spent_key(key(max_concurrent=2))  # the same key, raised by an admin


async def test_a_changed_record_of_the_key_is_checked_by_its_own_limits(models: Catalog) -> None:
    # The admitter remembers a key's buckets by the record it last saw: a record the admin
    # changed (a new object, same id) must be judged by its own limits at once.
    gate, _ = admitter(models)
    limited = key(rps=0.001, burst=1)
    route = models.resolve("free")
    await gate.admit(limited, route, request("free"), NO_HEADERS)
    with pytest.raises(RateLimitedError):
        gate.refuse_spent_key(limited)
    unlimited = replace(limited, rps=None, burst=None)
    gate.refuse_spent_key(unlimited)
    await gate.admit(unlimited, route, request("free"), NO_HEADERS)
    same_limits = replace(limited)  # the key cache reloaded: the same (spent) bucket
    with pytest.raises(RateLimitedError):
        gate.refuse_spent_key(same_limits)
