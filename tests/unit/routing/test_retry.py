from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from relaygate.routing.retry import MIN_ATTEMPT_SECONDS, RetryPolicy
from relaygate.settings.routing import RoutingSettings

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    attempts_per_deployment=st.integers(1, 10),
    base_delay=st.floats(0, 5),
    max_delay=st.floats(0, 60),
    max_retry_after=st.floats(0, 120),
)
retry_afters = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6))


@given(
    retry_number=st.integers(min_value=1, max_value=30),
    retry_after=retry_afters,
    seed=st.integers(),
)
def test_backoff_is_bounded_and_honours_retry_after(
    retry_number: int, retry_after: float | None, seed: int
) -> None:
    policy = RetryPolicy()
    delay = policy.backoff(retry_number, retry_after, random.Random(seed))
    ceiling = min(policy.max_delay, policy.base_delay * 2 ** (retry_number - 1))
    assert 0 <= delay <= max(ceiling, policy.max_retry_after)
    if retry_after is not None:
        assert delay >= min(retry_after, policy.max_retry_after)
    else:
        assert delay <= ceiling


@given(
    policy=policies,
    retry_number=st.integers(min_value=1, max_value=10_000),
    retry_after=retry_afters,
    seed=st.integers(),
)
def test_backoff_never_exceeds_the_larger_cap(
    policy: RetryPolicy, retry_number: int, retry_after: float | None, seed: int
) -> None:
    delay = policy.backoff(retry_number, retry_after, random.Random(seed))
    assert 0 <= delay <= max(policy.max_delay, policy.max_retry_after)


@given(
    policy=policies,
    retry_number=st.integers(min_value=1, max_value=50),
    retry_after=retry_afters,
    remaining=st.floats(min_value=-10, max_value=1000),
    seed=st.integers(),
)
def test_delay_within_respects_the_deadline(
    policy: RetryPolicy,
    retry_number: int,
    retry_after: float | None,
    remaining: float,
    seed: int,
) -> None:
    delay = policy.delay_within(retry_number, retry_after, remaining, random.Random(seed))
    same = policy.backoff(retry_number, retry_after, random.Random(seed))
    if delay is None:
        assert same + MIN_ATTEMPT_SECONDS > remaining
    else:
        assert delay == same
        assert delay + MIN_ATTEMPT_SECONDS <= remaining


@given(seed=st.integers())
def test_ceiling_grows_exponentially_until_the_cap(seed: int) -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    rng = random.Random(seed)
    for retry_number, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)):
        samples = [policy.backoff(retry_number, None, rng) for _ in range(200)]
        assert max(samples) <= ceiling
        assert max(samples) > ceiling * 0.8  # full jitter reaches near the ceiling...
        assert min(samples) < ceiling * 0.2  # ...and near zero


def test_backoff_is_jittered() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    delays = {round(policy.backoff(3, None, rng), 6) for _ in range(50)}
    assert len(delays) > 40


def test_retry_after_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=0.2, max_retry_after=3.0)
    assert policy.backoff(1, 3600.0, random.Random(1)) == 3.0
    assert policy.backoff(1, 1.5, random.Random(1)) == 1.5


def test_policy_from_settings() -> None:
    settings = RoutingSettings(
        max_attempts=9,
        attempts_per_deployment=3,
        backoff_base_seconds=0.5,
        backoff_max_seconds=2.0,
        max_retry_after_seconds=7.0,
    )
    assert RetryPolicy.from_settings(settings) == RetryPolicy(9, 3, 0.5, 2.0, 7.0)
