"""The attempt loop with scripted upstream outcomes, a fake clock and a fake sleep."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from relaygate.core.context import RequestContext, summarize_attempts
from relaygate.core.errors import (
    GatewayError,
    NoRouteError,
    RateLimitedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from relaygate.relay.attempts import (
    AttemptRunner,
    GatewayTimeoutError,
    health_board,
    settle_stream,
)
from relaygate.routing.breaker import BreakerState
from relaygate.routing.catalog import Catalog, Deployment, build_catalog
from relaygate.settings import Settings
from relaygate.transport.base import Timeouts

Outcome = str | UpstreamError


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Script:
    """Each deployment answers with its listed outcomes in turn, then "ok" forever."""

    def __init__(self, time: FakeTime, **plans: list[Outcome]) -> None:
        self.time = time
        self.plans = {k.replace("_", "-"): list(v) for k, v in plans.items()}
        self.calls: list[tuple[str, Timeouts]] = []
        self.cost = 0.01

    async def __call__(self, dep: Deployment, timeouts: Timeouts) -> str:
        self.calls.append((dep.id, timeouts))
        self.time.now += self.cost
        plan = self.plans.get(dep.id, [])
        outcome = plan.pop(0) if plan else "ok"
        if isinstance(outcome, UpstreamError):
            raise outcome
        if outcome == "hang":
            self.time.now += timeouts.first_byte - self.cost
            raise UpstreamTimeoutError("upstream did not answer before the first-byte timeout")
        return f"{dep.id}:{outcome}"

    @property
    def order(self) -> list[str]:
        return [dep for dep, _ in self.calls]


def err500() -> UpstreamError:
    return UpstreamError("upstream error", status=502, upstream_status=500, retryable=True)


def err529() -> UpstreamError:
    return UpstreamError(
        "overloaded", status=503, upstream_status=529, retryable=True, kind="overloaded"
    )


def err429(retry_after: float | None) -> UpstreamError:
    return UpstreamError(
        "rate limited",
        status=429,
        upstream_status=429,
        retryable=True,
        retry_after=retry_after,
        kind="rate_limited",
    )


def err400() -> UpstreamError:
    return UpstreamError("bad", status=400, upstream_status=400, kind="invalid_request")


def err401() -> UpstreamError:
    return UpstreamError("creds", status=502, upstream_status=401, retryable=True)


def deployment(name: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "name": name, "base_url": "http://upstream.test/v1", **extra}


def model(
    name: str, deps: list[str], fallbacks: tuple[str, ...] = (), **routing: Any
) -> dict[str, Any]:
    routing = {"strategy": "ordered", "backoff_base_seconds": 0.1, **routing}
    breaker = routing.pop("breaker", {})
    return {
        "name": name,
        "deployments": [deployment(d, breaker=breaker) for d in deps],
        "fallbacks": list(fallbacks),
        "routing": routing,
    }


class NoTransport:
    async def send(self, req: Any, timeouts: Timeouts) -> Any:
        raise AssertionError("the runner tests never reach a transport")

    async def close(self) -> None:
        return None


def setup(
    *models: dict[str, Any],
    time: FakeTime | None = None,
    changes: list[tuple[str, BreakerState | None, BreakerState]] | None = None,
    on_panic: Callable[[str], None] | None = None,
) -> tuple[Catalog, AttemptRunner, FakeTime]:
    time = time or FakeTime()
    catalog = build_catalog(Settings.model_validate({"models": list(models)}), NoTransport())
    hook: Callable[..., None] | None = None
    if changes is not None:
        hook = lambda d, o, n: changes.append((d, o, n))  # noqa: E731
    board = health_board(catalog, hook, time, on_panic=on_panic)
    runner = AttemptRunner(catalog.get, board, random.Random(1), clock=time, sleep=time.sleep)
    return catalog, runner, time


def context() -> RequestContext:
    return RequestContext("req_test", "openai.chat", "openai")


async def run(catalog: Catalog, runner: AttemptRunner, script: Script, name: str = "m") -> Any:
    ctx = context()
    result = await runner.run(ctx, catalog.resolve(name), script)
    return ctx, result


async def test_first_deployment_answers() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"]))
    ctx, result = await run(catalog, runner, Script(time))
    assert result == "a:ok"
    assert ctx.model_used == "m" and ctx.deployment == "a"
    assert [(a.deployment, a.outcome, a.status) for a in ctx.attempts] == [("a", "ok", 200)]
    assert time.slept == []


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    catalog, runner, time = setup(model("m", ["a"]))
    script = Script(time, a=[err429(2.0)])
    ctx, result = await run(catalog, runner, script)
    assert result == "a:ok"
    assert script.order == ["a", "a"]
    assert time.slept == [pytest.approx(2.0)]
    assert ctx.waited_seconds == pytest.approx(2.0)


async def test_retry_after_is_capped() -> None:
    catalog, runner, time = setup(model("m", ["a"], max_retry_after_seconds=1.5))
    await run(catalog, runner, Script(time, a=[err429(3600.0)]))
    assert time.slept == [pytest.approx(1.5)]


async def test_500_twice_then_success_with_growing_backoff() -> None:
    catalog, runner, time = setup(model("m", ["a"], attempts_per_deployment=3))
    script = Script(time, a=[err500(), err500()])
    ctx, result = await run(catalog, runner, script)
    assert result == "a:ok" and len(ctx.attempts) == 3
    assert [a.outcome for a in ctx.attempts] == ["upstream", "upstream", "ok"]
    assert len(time.slept) == 2
    assert 0 <= time.slept[0] <= 0.1 and 0 <= time.slept[1] <= 0.2


async def test_529_fails_over_to_the_other_deployment_without_waiting() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"]))
    script = Script(time, a=[err529()])
    ctx, result = await run(catalog, runner, script)
    assert result == "b:ok"
    assert script.order == ["a", "b"]
    assert time.slept == []
    assert [a.outcome for a in ctx.attempts] == ["overloaded", "ok"]


async def test_passes_retry_each_deployment_after_its_backoff() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"], attempts_per_deployment=2))
    script = Script(time, a=[err500(), err500()], b=[err500()])
    _ctx, result = await run(catalog, runner, script)
    assert script.order == ["a", "b", "a", "b"]
    assert result == "b:ok"


async def test_every_deployment_down_then_fallback_model_answers() -> None:
    catalog, runner, time = setup(
        model("m", ["a", "b"], ("f",), attempts_per_deployment=1), model("f", ["c"])
    )
    script = Script(time, a=[err500()], b=[err529()])
    ctx, result = await run(catalog, runner, script)
    assert result == "c:ok"
    assert ctx.model_used == "f"
    assert [a.deployment for a in ctx.attempts] == ["a", "b", "c"]


async def test_fallback_chain_is_followed() -> None:
    catalog, runner, time = setup(
        model("sonnet", ["s"], ("haiku",), attempts_per_deployment=1, max_attempts=5),
        model("haiku", ["h"], ("deepseek",), attempts_per_deployment=1),
        model("deepseek", ["d"]),
    )
    script = Script(time, s=[err500()], h=[err500()])
    ctx, result = await run(catalog, runner, script, "sonnet")
    assert result == "d:ok" and ctx.model_used == "deepseek"


async def test_all_down_lists_every_attempt_in_a_503() -> None:
    catalog, runner, time = setup(
        model("m", ["a", "b"], ("f",), attempts_per_deployment=1),
        model("f", ["c"], attempts_per_deployment=1),
    )
    script = Script(time, a=[err500()], b=[err529()], c=[err500()])
    with pytest.raises(NoRouteError) as info:
        await run(catalog, runner, script)
    err = info.value
    assert err.status == 503
    assert err.attempts == ("a: upstream 500", "b: overloaded 529", "c: upstream 500")
    assert "a: upstream 500; b: overloaded 529; c: upstream 500" in err.message


async def test_one_deployment_keeps_its_own_error() -> None:
    catalog, runner, time = setup(model("m", ["a"], attempts_per_deployment=2))
    script = Script(time, a=[err429(0.5), err429(0.7)])
    with pytest.raises(UpstreamError) as info:
        await run(catalog, runner, script)
    assert info.value.status == 429 and info.value.retry_after == 0.7


async def test_caller_error_is_not_retried_and_does_not_count() -> None:
    changes: list[Any] = []
    catalog, runner, time = setup(
        model("m", ["a", "b"], breaker={"consecutive_failures": 1}), changes=changes
    )
    script = Script(time, a=[err400()])
    with pytest.raises(UpstreamError) as info:
        await run(catalog, runner, script)
    assert info.value.status == 400
    assert script.order == ["a"]
    assert all(old is None for _, old, _ in changes)  # no breaker moved


async def test_bad_credentials_move_on_and_are_not_retried() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"], attempts_per_deployment=3))
    script = Script(time, a=[err401(), err401()], b=[err500(), err500()])
    _, result = await run(catalog, runner, script)
    assert script.order == ["a", "b", "b", "b"]
    assert result == "b:ok"


async def test_max_attempts_bounds_the_request() -> None:
    catalog, runner, time = setup(
        model("m", ["a", "b"], ("f",), attempts_per_deployment=3, max_attempts=4),
        model("f", ["c"]),
    )
    script = Script(time, a=[err500()] * 5, b=[err500()] * 5)
    with pytest.raises(NoRouteError):
        await run(catalog, runner, script)
    assert script.order == ["a", "b", "a", "b"]


async def test_open_breaker_gets_no_call_and_half_open_sends_one_probe() -> None:
    changes: list[Any] = []
    breaker = {"consecutive_failures": 2, "cooldown_seconds": 10.0}
    catalog, runner, time = setup(
        model("m", ["a", "b"], attempts_per_deployment=1, breaker=breaker), changes=changes
    )
    script = Script(time, a=[err500(), err500()])
    for _ in range(2):
        await run(catalog, runner, script)
    assert ("a", BreakerState.CLOSED, BreakerState.OPEN) in changes
    script.calls.clear()
    for _ in range(3):
        _, result = await run(catalog, runner, script)
        assert result == "b:ok"
    assert script.order == ["b", "b", "b"]
    time.now += 10.0
    script.calls.clear()
    _, result = await run(catalog, runner, script)
    assert result == "a:ok" and script.order == ["a"]
    assert changes[-2:] == [
        ("a", BreakerState.OPEN, BreakerState.HALF_OPEN),
        ("a", BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


async def test_all_breakers_open_tries_each_deployment_once_in_panic() -> None:
    breaker = {"consecutive_failures": 1, "cooldown_seconds": 30.0}
    catalog, runner, time = setup(
        model("m", ["a", "b"], attempts_per_deployment=2, breaker=breaker)
    )
    script = Script(time, a=[err500()] * 3, b=[err500()] * 3)
    with pytest.raises(NoRouteError):
        await run(catalog, runner, script)
    script.calls.clear()
    time.now += 5.0
    with pytest.raises(NoRouteError) as info:
        await run(catalog, runner, script)
    assert script.order == ["a", "b"]  # healthy panic: one pass, no retries
    assert info.value.attempts == ("a: upstream 500", "b: upstream 500")


async def test_backoff_never_sleeps_past_the_deadline() -> None:
    catalog, runner, time = setup(
        model("m", ["a"], deadline_seconds=1.0, attempts_per_deployment=5)
    )
    script = Script(time, a=[err429(5.0)] * 5)
    with pytest.raises(UpstreamError) as info:
        await run(catalog, runner, script)
    assert info.value.status == 429
    assert time.slept == []
    assert script.order == ["a"]


async def test_hang_becomes_504_within_the_deadline() -> None:
    catalog, runner, time = setup(
        model("m", ["a", "b"], deadline_seconds=2.0, attempts_per_deployment=3),
    )
    for dep in catalog.resolve("m").deployments:
        object.__setattr__(dep, "timeouts", Timeouts(1.0, 0.8, 600.0))
    start = time.now
    script = Script(time, a=["hang"] * 5, b=["hang"] * 5)
    with pytest.raises(GatewayTimeoutError) as info:
        await run(catalog, runner, script)
    assert info.value.status == 504
    # A hung deployment is not retried; after b, 0.4 s is left: less than a first-byte timeout.
    assert script.order == ["a", "b"]
    assert time.now - start == pytest.approx(1.6)
    # Each attempt got what was left of the deadline at most.
    assert script.calls[0][1].first_byte == 0.8
    assert script.calls[-1][1].total == pytest.approx(2.0 - 0.8)


async def test_timeouts_are_cut_to_the_deadline() -> None:
    catalog, runner, time = setup(model("m", ["a"], deadline_seconds=3.0))
    script = Script(time)
    await run(catalog, runner, script)
    assert script.calls[0][1] == Timeouts(connect=3.0, first_byte=3.0, total=3.0)


async def test_held_lease_keeps_the_deployment_busy_until_settled() -> None:
    catalog, runner, time = setup(model("m", ["a"], breaker={"consecutive_failures": 1}))
    ctx = context()
    held = await runner.run_held(ctx, catalog.resolve("m"), Script(time))
    health = runner.board.get("a")
    assert health is not None and health.outstanding == 1
    ctx.outcome = "partial"
    ctx.error_kind = "unavailable"
    settle_stream(ctx, held.lease)
    assert health.outstanding == 0
    assert ctx.attempts[-1].outcome == "partial"
    assert health.breaker.state is BreakerState.OPEN  # a stream cut mid-way counts


async def test_cancellation_frees_the_deployment() -> None:
    catalog, runner, _time = setup(model("m", ["a"]))

    async def never(dep: Deployment, timeouts: Timeouts) -> str:
        await asyncio.Event().wait()
        return "unreachable"

    task = asyncio.ensure_future(runner.run(context(), catalog.resolve("m"), never))
    await asyncio.sleep(0)
    health = runner.board.get("a")
    assert health is not None and health.outstanding == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert health.outstanding == 0


def test_summary_is_compact() -> None:
    ctx = context()
    from relaygate.core.context import AttemptRecord

    ctx.attempts += [
        AttemptRecord("a", "overloaded", 529, 0.0123),
        AttemptRecord("b", "ok", 200, 0.2),
    ]
    assert summarize_attempts(ctx.attempts) == "a:overloaded:529:12,b:ok:200:200"


def test_gateway_timeout_error_is_a_gateway_error() -> None:
    err = GatewayTimeoutError("late", ["a: timeout"])
    assert isinstance(err, GatewayError) and err.status == 504 and err.kind == "timeout"


class FakeSlot:
    def __init__(self, log: list[str], dep: str) -> None:
        self.log = log
        self.dep = dep

    def release(self, usage: Any) -> None:
        self.log.append(f"release {self.dep}")


class FakeCapacity:
    """Deployments in ``full`` are at capacity; ``governed`` ones are taken; the rest are free."""

    def __init__(self, governed: set[str], full: set[str], reserved: str | None = None) -> None:
        self.governed = governed
        self.full = full
        self.reserved = reserved
        self.log: list[str] = []

    def governs(self, dep: Deployment) -> bool:
        return dep.id in self.governed

    async def take(self, dep: Deployment) -> FakeSlot | float:
        if dep.id in self.full:
            return 2.5
        self.log.append(f"take {dep.id}")
        return FakeSlot(self.log, dep.id)

    def done(self) -> None:
        self.log.append("done")


async def test_capacity_skips_a_full_deployment_and_frees_slots_per_attempt() -> None:
    catalog, runner, time = setup(model("m", ["a", "b", "c"], attempts_per_deployment=1))
    ctx = context()
    ctx.capacity = FakeCapacity({"a", "b"}, full={"a"})
    script = Script(time, b=[err500()])
    result = await runner.run(ctx, catalog.resolve("m"), script)
    assert result == "c:ok" and script.order == ["b", "c"]  # c has no caps: nothing taken
    assert ctx.capacity.log == ["take b", "release b", "done"]
    health = runner.board.get("a")
    assert health is not None and health.outstanding == 0


async def test_reserved_deployment_is_tried_first_and_held_until_the_stream_ends() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"]))
    ctx = context()
    capacity = FakeCapacity({"a", "b"}, full=set(), reserved="b")
    ctx.capacity = capacity
    held = await runner.run_held(ctx, catalog.resolve("m"), Script(time))
    assert held.value == "b:ok"
    assert capacity.log == ["take b", "done"]
    settle_stream(ctx, held.lease)
    assert capacity.log == ["take b", "done", "release b"]


async def test_every_deployment_at_capacity_is_busy_not_unavailable() -> None:
    catalog, runner, time = setup(model("m", ["a"], ("f",)), model("f", ["c"]))
    ctx = context()
    ctx.capacity = FakeCapacity({"a", "c"}, full={"a", "c"})
    script = Script(time)
    with pytest.raises(RateLimitedError) as busy:
        await runner.run(ctx, catalog.resolve("m"), script)
    assert busy.value.status == 429 and busy.value.retry_after == 2.5
    assert busy.value.message == "relaygate is busy: retry in 3 s"
    assert script.calls == []
