"""A key's buckets worked out once give the same asks as building them for each request."""

from __future__ import annotations

import pytest
from tests.unit.admission.support import key

from relaygate.limits.asks import key_asks, key_buckets, key_limits
from relaygate.store.records import KeyRecord

KEYS = [
    key(),
    key(rps=2.0, burst=4),
    key(rpm=60),
    key(tpm=1_000),
    key(rps=1.0, rpm=30, tpm=500, max_concurrent=3),
    key(tpm=100, max_concurrent=1),
]


@pytest.mark.parametrize("record", KEYS)
@pytest.mark.parametrize("tokens", [0, 1, 250, 10_000])
def test_cached_buckets_ask_what_key_asks_asks(record: KeyRecord, tokens: int) -> None:
    assert key_buckets(record).asks(tokens) == key_asks(record, tokens)
    assert key_buckets(record).zero_tokens == key_asks(record, 0).asks


def test_any_change_of_a_limit_changes_the_signature() -> None:
    base = key(rps=1.0, burst=2, rpm=10, tpm=100, max_concurrent=1)
    changed = [
        key(rps=2.0, burst=2, rpm=10, tpm=100, max_concurrent=1),
        key(rps=1.0, burst=3, rpm=10, tpm=100, max_concurrent=1),
        key(rps=1.0, burst=2, rpm=11, tpm=100, max_concurrent=1),
        key(rps=1.0, burst=2, rpm=10, tpm=101, max_concurrent=1),
        key(rps=1.0, burst=2, rpm=10, tpm=100, max_concurrent=2),
    ]
    assert all(key_limits(other) != key_limits(base) for other in changed)
