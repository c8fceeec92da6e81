from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from relaygate.routing.retry import RetryPolicy


@given(
    retry_number=st.integers(min_value=1, max_value=30),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
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


def test_backoff_is_jittered() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    delays = {round(policy.backoff(3, None, rng), 6) for _ in range(50)}
    assert len(delays) > 40
