"""Issue 8: lone deployments retry, timeouts do not double, breakers never blackhole."""

from __future__ import annotations

import logging

import pytest
from tests.unit.relay.test_attempts import (
    Script,
    err429,
    err500,
    model,
    run,
    setup,
)

from relaygate.core.errors import (
    GatewayError,
    RateLimitedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from relaygate.relay.attempts import AttemptRunner, GatewayTimeoutError
from relaygate.routing.breaker import BreakerState
from relaygate.routing.catalog import Catalog
from relaygate.transport.base import Timeouts


def first_byte(catalog: Catalog, name: str, seconds: float) -> None:
    for dep in catalog.resolve(name).deployments:
        object.__setattr__(dep, "timeouts", Timeouts(1.0, seconds, 600.0))


def state(runner: AttemptRunner, deployment: str) -> BreakerState:
    health = runner.board.get(deployment)
    assert health is not None
    return health.breaker.state


# --- a transient 429 on a single deployment ---------------------------------------------------


async def test_lone_deployment_gets_three_attempts_by_default_honouring_retry_after() -> None:
    catalog, runner, time = setup(model("m", ["a"]))
    script = Script(time, a=[err429(1.0), err429(1.0)])
    _, result = await run(catalog, runner, script)
    assert result == "a:ok"
    assert script.order == ["a", "a", "a"]
    assert time.slept == [pytest.approx(1.0), pytest.approx(1.0)]


# --- timeouts -----------------------------------------------------------------------------------


async def test_first_byte_timeout_is_never_retried_on_the_same_deployment() -> None:
    catalog, runner, time = setup(model("m", ["a"], attempts_per_deployment=3))
    first_byte(catalog, "m", 60.0)
    start = time.now
    script = Script(time, a=["hang", "hang"])
    with pytest.raises(UpstreamTimeoutError) as info:
        await run(catalog, runner, script)
    assert info.value.status == 504
    assert script.order == ["a"]
    assert time.now - start == pytest.approx(60.0)


async def test_timeout_fails_over_when_a_whole_first_byte_timeout_is_left() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"], deadline_seconds=130.0))
    first_byte(catalog, "m", 60.0)
    script = Script(time, a=["hang"])
    _, result = await run(catalog, runner, script)
    assert result == "b:ok" and script.order == ["a", "b"]


async def test_timeout_does_not_fail_over_into_an_attempt_the_deadline_would_cut() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"], deadline_seconds=100.0))
    first_byte(catalog, "m", 60.0)
    start = time.now
    script = Script(time, a=["hang"])
    with pytest.raises(UpstreamError) as info:
        await run(catalog, runner, script)
    assert info.value.status == 504
    assert script.order == ["a"]
    assert time.now - start == pytest.approx(60.0)


async def test_a_lone_timeout_stopped_by_the_first_byte_rule_says_so_not_deadline() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"], deadline_seconds=100.0))
    first_byte(catalog, "m", 60.0)
    script = Script(time, a=["hang"])
    with pytest.raises(UpstreamError) as info:
        await run(catalog, runner, script)
    message = info.value.message
    assert info.value.status == 504
    assert "did not answer before the first-byte timeout" in message
    assert "not retried" in message and "60 s first-byte timeout" in message
    assert "of the 100 s request deadline left" in message


async def test_timeouts_stopped_by_the_first_byte_rule_do_not_blame_the_deadline() -> None:
    catalog, runner, time = setup(model("m", ["a", "b", "c"], deadline_seconds=150.0))
    first_byte(catalog, "m", 60.0)
    script = Script(time, a=["hang"], b=["hang"])
    with pytest.raises(GatewayTimeoutError) as info:
        await run(catalog, runner, script)
    message = info.value.message
    assert script.order == ["a", "b"]
    assert "within the request deadline" not in message
    assert "timed out" in message and "not retried" in message
    assert "60 s first-byte timeout" in message and "150 s request deadline" in message


async def test_after_a_timeout_other_failures_still_fail_over_within_the_deadline() -> None:
    catalog, runner, time = setup(model("m", ["a", "b", "c"], deadline_seconds=200.0))
    first_byte(catalog, "m", 60.0)
    script = Script(time, a=["hang"], b=[err500()])
    _, result = await run(catalog, runner, script)
    assert result == "c:ok" and script.order == ["a", "b", "c"]


# --- breakers never blackhole; rate limits are not outages ---------------------------------------


async def test_rate_limits_never_open_the_breaker() -> None:
    catalog, runner, time = setup(model("m", ["a"], breaker={"consecutive_failures": 2}))
    script = Script(time, a=[err429(None)] * 9)
    for _ in range(3):
        with pytest.raises(UpstreamError) as info:
            await run(catalog, runner, script)
        assert info.value.status == 429
    assert state(runner, "a") is BreakerState.CLOSED
    _, result = await run(catalog, runner, script)
    assert result == "a:ok"


async def test_a_429_keeps_a_deployment_out_no_longer_than_its_retry_after() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"], attempts_per_deployment=1))
    script = Script(time, a=[err429(2.0)])
    _, result = await run(catalog, runner, script)
    assert result == "b:ok" and script.order == ["a", "b"]
    script.calls.clear()
    _, result = await run(catalog, runner, script)  # within a's Retry-After: b goes first
    assert result == "b:ok" and script.order == ["b"]
    time.now += 2.0
    script.calls.clear()
    _, result = await run(catalog, runner, script)
    assert result == "a:ok" and script.order == ["a"]


async def test_a_new_request_waits_out_a_lone_deployments_retry_after() -> None:
    catalog, runner, time = setup(model("m", ["a"], attempts_per_deployment=1))
    script = Script(time, a=[err429(1.0)])
    with pytest.raises(UpstreamError):
        await run(catalog, runner, script)
    _, result = await run(catalog, runner, script)
    assert result == "a:ok" and script.order == ["a", "a"]
    assert time.slept == [pytest.approx(1.0)]


async def test_every_deployment_rate_limited_is_a_429_with_the_largest_retry_after() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"], attempts_per_deployment=1))
    script = Script(time, a=[err429(1.0)], b=[err429(3.0)])
    with pytest.raises(RateLimitedError) as info:
        await run(catalog, runner, script)
    assert info.value.status == 429 and info.value.retry_after == pytest.approx(3.0)
    assert "a: rate_limited 429" in info.value.message


async def test_a_retry_after_beyond_the_wait_cap_is_a_429_not_a_503() -> None:
    catalog, runner, time = setup(
        model("m", ["a", "b"], attempts_per_deployment=1, max_retry_after_seconds=5.0)
    )
    script = Script(time, a=[err429(20.0)], b=[err429(20.0)])
    with pytest.raises(RateLimitedError):
        await run(catalog, runner, script)
    script.calls.clear()
    with pytest.raises(RateLimitedError) as info:  # both held: no call, still a 429
        await run(catalog, runner, script)
    assert script.calls == []
    assert info.value.retry_after == pytest.approx(20.0, abs=0.05)


async def test_every_breaker_open_sends_traffic_anyway(caplog: pytest.LogCaptureFixture) -> None:
    panics: list[str] = []
    catalog, runner, time = setup(
        model("m", ["a", "b"], attempts_per_deployment=1, breaker={"consecutive_failures": 1}),
        on_panic=panics.append,
    )
    script = Script(time, a=[err500()], b=[err500()])
    with pytest.raises(GatewayError):
        await run(catalog, runner, script)
    assert state(runner, "a") is BreakerState.OPEN and state(runner, "b") is BreakerState.OPEN
    time.now += 5.0
    script.calls.clear()
    with caplog.at_level(logging.WARNING, "relaygate.routing"):
        _, result = await run(catalog, runner, script)
    assert result == "a:ok" and script.order == ["a"]
    assert panics == ["m"]
    assert "healthy panic" in caplog.text
    assert state(runner, "a") is BreakerState.CLOSED  # the answer proved it healthy
    assert state(runner, "b") is BreakerState.OPEN


async def test_a_lone_deployment_with_an_open_breaker_is_still_tried() -> None:
    catalog, runner, time = setup(model("m", ["a"], breaker={"consecutive_failures": 2}))
    script = Script(time, a=[err500()] * 4)
    with pytest.raises(UpstreamError):
        await run(catalog, runner, script)
    assert state(runner, "a") is BreakerState.OPEN
    script.calls.clear()
    with pytest.raises(UpstreamError) as info:
        await run(catalog, runner, script)
    assert info.value.status == 502  # the upstream's own error, not a blanket 503
    assert script.order == ["a"]  # a failure in panic does not retry a known-bad deployment
    assert state(runner, "a") is BreakerState.OPEN


async def test_no_panic_while_a_fallback_model_can_answer() -> None:
    panics: list[str] = []
    catalog, runner, time = setup(
        model("m", ["a"], ("f",), attempts_per_deployment=1, breaker={"consecutive_failures": 1}),
        model("f", ["c"]),
        on_panic=panics.append,
    )
    script = Script(time, a=[err500()])
    await run(catalog, runner, script)
    script.calls.clear()
    ctx, result = await run(catalog, runner, script)
    assert result == "c:ok" and script.order == ["c"] and panics == []
    assert ctx.model_used == "f"


async def test_every_timeout_of_several_deployments_is_a_504() -> None:
    catalog, runner, time = setup(model("m", ["a", "b"], deadline_seconds=125.0))
    first_byte(catalog, "m", 60.0)
    script = Script(time, a=["hang"], b=["hang"])
    with pytest.raises(GatewayTimeoutError):
        await run(catalog, runner, script)
    assert script.order == ["a", "b"]
