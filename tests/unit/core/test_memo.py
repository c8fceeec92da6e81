"""BytesMemo: a function's answers per short byte string, bounded."""

from __future__ import annotations

from relaygate.core.memo import MAX_KEY_BYTES, BytesMemo


def test_answers_are_the_functions_and_each_kept_key_is_worked_out_once() -> None:
    calls: list[bytes] = []

    def upper(key: bytes) -> str:
        calls.append(key)
        return key.decode("latin-1").upper()

    memo = BytesMemo(upper, 10)
    look = memo.__getitem__
    answers = [look(b"x-api-key"), look(b"caf\xe9"), look(b"x-api-key")]
    assert answers == ["X-API-KEY", "CAF\xc9", "X-API-KEY"]
    assert calls == [b"x-api-key", b"caf\xe9"]


def test_past_its_bound_or_for_long_keys_it_works_answers_out_each_time() -> None:
    calls: list[bytes] = []

    def size(key: bytes) -> int:
        calls.append(key)
        return len(key)

    memo = BytesMemo(size, 3)
    long = b"n" * (MAX_KEY_BYTES + 1)
    assert [memo[long], memo[long]] == [MAX_KEY_BYTES + 1] * 2
    for key in (b"a", b"bb", b"ccc", b"dddd", b"dddd"):
        assert memo[key] == len(key)
    assert len(memo) == 3 and b"dddd" not in memo
    assert calls == [long, long, b"a", b"bb", b"ccc", b"dddd", b"dddd"]
